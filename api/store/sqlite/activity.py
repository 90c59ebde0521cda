"""Room activity (chat, hands) in SQLite: the append-only ``activity`` table."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import replace

from ...models import ActivityEvent
from ..records import activity_fields, activity_from
from ..rules import stored_moment
from .base import SqliteBase, insert


class SqliteActivity(SqliteBase):
    """Rows ordered by ``seq``, the append order."""

    async def append_activity(self, event: ActivityEvent) -> None:
        fields = activity_fields(replace(event, at=stored_moment(event.at)))

        def write(conn: sqlite3.Connection) -> None:
            insert(conn, "activity", fields)

        await self._run(write)

    async def list_activity(
        self, session_id: str, kinds: Collection[str] | None = None
    ) -> list[ActivityEvent]:
        columns = "id, session_id, class_id, user_id, kind, at, data"
        if kinds is None:
            rows = await self._all(
                f"SELECT {columns} FROM activity WHERE session_id = ? ORDER BY seq", (session_id,)
            )
        else:
            wanted = sorted(set(kinds))
            if not wanted:
                return []
            marks = ", ".join("?" * len(wanted))
            rows = await self._all(
                f"SELECT {columns} FROM activity WHERE session_id = ? AND kind IN ({marks}) "
                "ORDER BY seq",
                (session_id, *wanted),
            )
        return [activity_from(fields) for fields in rows]

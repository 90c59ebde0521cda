"""Presence events (append-only) and per-participant counters in SQLite."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from ...models import PresenceCounters, PresenceEvent
from ..records import (
    presence_counters_fields,
    presence_counters_from,
    presence_event_fields,
    presence_event_from,
)
from ..rules import stored_moment
from .base import SqliteBase, insert


class SqlitePresence(SqliteBase):
    """The ``presence_events`` (ordered by ``seq``) and ``presence_counters`` tables."""

    async def append_presence_event(self, event: PresenceEvent) -> None:
        fields = presence_event_fields(replace(event, at=stored_moment(event.at)))

        def write(conn: sqlite3.Connection) -> None:
            insert(conn, "presence_events", fields)

        await self._run(write)

    async def list_presence_events(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceEvent]:
        if user_id is None:
            rows = await self._all(
                "SELECT * FROM presence_events WHERE session_id = ? ORDER BY seq", (session_id,)
            )
        else:  # the session's index, the user's rows filtered in SQLite (none decoded here)
            rows = await self._all(
                "SELECT * FROM presence_events WHERE session_id = ? AND user_id = ? ORDER BY seq",
                (session_id, user_id),
            )
        return [presence_event_from(fields) for fields in rows]

    async def put_presence_counters(self, counters: PresenceCounters) -> None:
        fields = presence_counters_fields(
            replace(counters, last_seen_at=stored_moment(counters.last_seen_at))
        )

        def upsert(conn: sqlite3.Connection) -> None:
            # One statement, one autocommit: no read first, about once a second per participant.
            insert(conn, "presence_counters", fields, replace_on=("session_id", "user_id"))

        await self._run(upsert)

    async def list_presence_counters(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceCounters]:
        if user_id is None:
            rows = await self._all(
                "SELECT * FROM presence_counters WHERE session_id = ? ORDER BY user_id",
                (session_id,),
            )
        else:
            rows = await self._all(
                "SELECT * FROM presence_counters WHERE session_id = ? AND user_id = ?",
                (session_id, user_id),
            )
        return [presence_counters_from(fields) for fields in rows]

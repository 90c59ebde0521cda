"""Recordings in SQLite: one JSON document per recording, plus the columns it is found by."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...models import Recording
from ..records import recording_doc, recording_from_doc
from .base import SqliteBase


class SqliteRecordings(SqliteBase):
    """The ``recordings`` table (``doc`` holds :func:`api.store.records.recording_doc`)."""

    async def put_recording(self, recording: Recording) -> None:
        doc = recording_doc(recording)
        params = (recording.id, recording.class_id, doc["startedAt"], json.dumps(doc))
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO recordings (id, class_id, started_at, doc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                params,
            )
        )

    async def get_recording(self, recording_id: str) -> Recording | None:
        fields = await self._one("SELECT id, doc FROM recordings WHERE id = ?", (recording_id,))
        return _recording(fields) if fields else None

    async def list_recordings(self, class_id: str) -> list[Recording]:
        rows = await self._all(
            "SELECT id, doc FROM recordings WHERE class_id = ? ORDER BY started_at DESC, id DESC",
            (class_id,),
        )
        return [_recording(fields) for fields in rows]

    async def list_unfinished_recordings(self) -> list[Recording]:
        rows = await self._all(
            "SELECT id, doc FROM recordings WHERE json_extract(doc, '$.status') = 'recording'"
            " OR json_extract(doc, '$.job.status') IN ('pending', 'running')"
            " ORDER BY started_at, id",
            (),
        )
        return [_recording(fields) for fields in rows]

    async def delete_recording(self, recording_id: str) -> bool:
        deleted: int = await self._run(
            lambda conn: (
                conn.execute("DELETE FROM recordings WHERE id = ?", (recording_id,)).rowcount
            )
        )
        return deleted > 0


def _recording(fields: Mapping[str, Any]) -> Recording:
    return recording_from_doc(fields["id"], json.loads(fields["doc"]))

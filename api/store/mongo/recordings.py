"""Recordings in MongoDB: one ``recordings`` document each, always written whole."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ...models import Recording
from ...timeutil import iso_ms, parse_iso
from ..records import recording_doc, recording_from_doc
from .base import MongoBase
from .documents import Doc, by_id, oid


class MongoRecordings(MongoBase):
    """:func:`api.store.records.recording_doc` with real dates for ``startedAt`` and
    ``stoppedAt``."""

    async def put_recording(self, recording: Recording) -> None:
        # Always the whole document (``replace_one``): files and the compose job change
        # together, and nx-27017 neither ``$push``es subdocuments nor ``$set``s dates.
        doc = recording_doc(recording)
        doc["startedAt"] = parse_iso(doc["startedAt"])
        if doc["stoppedAt"]:
            doc["stoppedAt"] = parse_iso(doc["stoppedAt"])
        key = ObjectId(recording.id)
        try:
            await self._recordings.replace_one({"_id": key}, {"_id": key, **doc}, upsert=True)
        except DuplicateKeyError:
            # Two upserts of the same new document raced; it exists now, so replace it.
            await self._recordings.replace_one({"_id": key}, {"_id": key, **doc}, upsert=True)

    async def get_recording(self, recording_id: str) -> Recording | None:
        doc = await by_id(self._recordings, recording_id)
        return _recording(doc) if doc is not None else None

    async def list_recordings(self, class_id: str) -> list[Recording]:
        docs = await (
            self._recordings.find({"classId": class_id})
            .sort([("startedAt", DESCENDING), ("_id", DESCENDING)])
            .to_list()
        )
        return [_recording(doc) for doc in docs]

    async def list_unfinished_recordings(self) -> list[Recording]:
        unfinished = {
            "$or": [{"status": "recording"}, {"job.status": {"$in": ["pending", "running"]}}]
        }
        docs = await (
            self._recordings.find(unfinished)
            .sort([("startedAt", ASCENDING), ("_id", ASCENDING)])
            .to_list()
        )
        return [_recording(doc) for doc in docs]

    async def delete_recording(self, recording_id: str) -> bool:
        found = oid(recording_id)
        if found is None:
            return False
        result = await self._recordings.delete_one({"_id": found})
        return result.deleted_count > 0


def _recording(doc: Doc) -> Recording:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    for key in ("startedAt", "stoppedAt"):
        if isinstance(fields.get(key), datetime):
            fields[key] = iso_ms(fields[key])
    return recording_from_doc(str(doc["_id"]), fields)

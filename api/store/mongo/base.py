"""The client, the collections and their indexes."""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.write_concern import WriteConcern

from ..base import Store
from .documents import Doc

OLDEST_FIRST = [("createdAt", ASCENDING), ("_id", ASCENDING)]

DURABLE = WriteConcern(w="majority", j=True)
"""Acknowledged only once on a majority of the replica set and in its journal: what the
attendance record is made of survives a power loss (and a failover), not only a crash of
this process. Every collection: accounts and classes are as much part of the record as the
sessions, marks and presence that refer to them."""

_INDEXES: dict[str, list[IndexModel]] = {
    "users": [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        IndexModel([("role", ASCENDING), ("createdAt", ASCENDING)], name="role_created"),
        IndexModel([("externalId", ASCENDING)], name="external_id"),
    ],
    "classes": [
        IndexModel([("teacherId", ASCENDING), ("createdAt", ASCENDING)], name="teacher_created"),
        IndexModel([("studentIds", ASCENDING)], name="student_ids"),
    ],
    "sessions": [
        IndexModel([("classId", ASCENDING), ("startedAt", DESCENDING)], name="class_started"),
    ],
    "marks": [
        IndexModel(
            [("sessionId", ASCENDING), ("studentId", ASCENDING)],
            unique=True,
            name="session_student_unique",
        ),
        IndexModel([("classId", ASCENDING), ("studentId", ASCENDING)], name="class_student"),
    ],
    "presence_events": [
        IndexModel(
            [("sessionId", ASCENDING), ("seq", ASCENDING)], unique=True, name="session_seq_unique"
        ),
    ],
    "activity": [
        IndexModel(
            [("sessionId", ASCENDING), ("seq", ASCENDING)], unique=True, name="session_seq_unique"
        ),
    ],
    "recordings": [
        IndexModel([("classId", ASCENDING), ("startedAt", DESCENDING)], name="by_class"),
    ],
    "presence_counters": [
        IndexModel(
            [("sessionId", ASCENDING), ("userId", ASCENDING)],
            unique=True,
            name="session_user_unique",
        ),
    ],
}


class MongoBase(Store):
    """Owns the client; every resource's methods reach their collections through it."""

    def __init__(self, uri: str, db_name: str, *, timeout_seconds: float = 5.0) -> None:
        self._uri = uri
        self._db_name = db_name
        self._timeout_ms = round(1000 * timeout_seconds)
        """How long a call waits for a reachable server before it fails (the driver's
        default, 30 s, would hold every request of an outage that long)."""
        self._client: AsyncMongoClient[Doc] | None = None
        # One lock per session with appends in flight, so that concurrent appends draw their
        # sequence numbers in call order; a lock goes away with its last user.
        self._append_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient[Doc] = AsyncMongoClient(
            self._uri, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=self._timeout_ms
        )
        try:
            for name, indexes in _INDEXES.items():
                await client[self._db_name][name].create_indexes(indexes)
        except BaseException:
            await client.close()
            raise
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _col(self, name: str) -> AsyncCollection[Doc]:
        if self._client is None:
            raise RuntimeError("MongoStore is not open")
        return self._client.get_database(self._db_name, write_concern=DURABLE)[name]

    @property
    def _users(self) -> AsyncCollection[Doc]:
        return self._col("users")

    @property
    def _classes(self) -> AsyncCollection[Doc]:
        return self._col("classes")

    @property
    def _sessions(self) -> AsyncCollection[Doc]:
        return self._col("sessions")

    @property
    def _active(self) -> AsyncCollection[Doc]:
        return self._col("active_sessions")

    @property
    def _marks(self) -> AsyncCollection[Doc]:
        return self._col("marks")

    @property
    def _presence_events(self) -> AsyncCollection[Doc]:
        return self._col("presence_events")

    @property
    def _presence_seq(self) -> AsyncCollection[Doc]:
        return self._col("presence_seq")

    @property
    def _presence_counters(self) -> AsyncCollection[Doc]:
        return self._col("presence_counters")

    @property
    def _recordings(self) -> AsyncCollection[Doc]:
        return self._col("recordings")

    @property
    def _activity(self) -> AsyncCollection[Doc]:
        return self._col("activity")

    @property
    def _activity_seq(self) -> AsyncCollection[Doc]:
        return self._col("activity_seq")

    async def _append_in_order(
        self,
        into: AsyncCollection[Doc],
        sequences: AsyncCollection[Doc],
        session_id: str,
        doc: Doc,
    ) -> None:
        """Insert `doc` with the next ``seq`` of `session_id` drawn from `sequences`.

        The sequence number comes from the server, so the order is exact even across
        processes and restarts, whatever the clocks and ObjectId counters do; appends of one
        process draw theirs in call order (a lock per collection and session). A crash
        between the two writes leaves a gap in seq, which orders the same."""
        key = f"{into.name}:{session_id}"
        lock = self._append_locks.get(key)
        if lock is None:
            lock = self._append_locks[key] = asyncio.Lock()
        async with lock:
            counter = await sequences.find_one_and_update(
                {"_id": session_id},
                {"$inc": {"last": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if counter is None:  # an upsert returning AFTER always has a document
                raise RuntimeError(f"{sequences.name} upsert returned nothing")
            await into.insert_one({**doc, "seq": counter["last"]})

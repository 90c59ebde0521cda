"""Presence in MongoDB: insert-only ``presence_events`` and ``presence_counters``."""

from __future__ import annotations

from dataclasses import replace

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from ...models import PresenceCounters, PresenceEvent
from ..records import (
    presence_counters_fields,
    presence_counters_from,
    presence_event_fields,
    presence_event_from,
)
from ..rules import stored_moment
from .base import MongoBase
from .documents import from_doc, to_doc


class MongoPresence(MongoBase):
    """Events ordered by a per-session ``seq`` drawn from ``presence_seq``; counters one
    document per (session, user), replaced with ``upsert``."""

    # -- presence -------------------------------------------------------------
    async def append_presence_event(self, event: PresenceEvent) -> None:
        doc = to_doc(presence_event_fields(replace(event, at=stored_moment(event.at))))
        await self._append_in_order(
            self._presence_events, self._presence_seq, event.session_id, doc
        )

    async def list_presence_events(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceEvent]:
        query = {"sessionId": session_id} | ({} if user_id is None else {"userId": user_id})
        docs = await self._presence_events.find(query).sort([("seq", ASCENDING)]).to_list()
        return [presence_event_from(from_doc(doc)) for doc in docs]

    async def put_presence_counters(self, counters: PresenceCounters) -> None:
        # One replace_one upsert, no read first: this runs about once a second per participant.
        key = {"sessionId": counters.session_id, "userId": counters.user_id}
        doc = to_doc(
            presence_counters_fields(
                replace(counters, last_seen_at=stored_moment(counters.last_seen_at))
            )
        )
        try:
            await self._presence_counters.replace_one(key, doc, upsert=True)
        except DuplicateKeyError:
            # Two upserts of the same new document raced; it exists now, so replace it.
            await self._presence_counters.replace_one(key, doc, upsert=True)

    async def list_presence_counters(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceCounters]:
        query = {"sessionId": session_id} | ({} if user_id is None else {"userId": user_id})
        docs = await self._presence_counters.find(query).sort([("userId", ASCENDING)]).to_list()
        return [presence_counters_from(from_doc(doc)) for doc in docs]

"""Room activity (chat, hands) in MongoDB: insert-only ``activity`` documents."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from typing import Any

from pymongo import ASCENDING

from ...models import ActivityEvent
from ..records import activity_fields, activity_from
from ..rules import stored_moment
from .base import MongoBase
from .documents import from_doc, to_doc


class MongoActivity(MongoBase):
    """Ordered by a per-session ``seq`` drawn from ``activity_seq``, as presence events are
    from ``presence_seq``: exact across processes and restarts, whatever the clocks do."""

    async def append_activity(self, event: ActivityEvent) -> None:
        doc = to_doc(activity_fields(replace(event, at=stored_moment(event.at))))
        await self._append_in_order(self._activity, self._activity_seq, event.session_id, doc)

    async def list_activity(
        self, session_id: str, kinds: Collection[str] | None = None
    ) -> list[ActivityEvent]:
        query: dict[str, Any] = {"sessionId": session_id}
        if kinds is not None:
            query["kind"] = {"$in": sorted(set(kinds))}
        docs = await self._activity.find(query).sort([("seq", ASCENDING)]).to_list()
        return [activity_from(from_doc(doc)) for doc in docs]

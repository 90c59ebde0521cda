"""After a restart: close presence intervals the crash left open, at their last heartbeat."""

from __future__ import annotations

import logging

from ..ids import UserId
from ..models import PresenceEvent
from ..store import Store

log = logging.getLogger(__name__)

RESTART_REASON = "server restart"


async def close_open_presence(store: Store) -> int:
    """Append a ``disconnected`` event for every user still connected in an active session,
    dated at that user's last persisted heartbeat; returns how many were closed.

    The sessions themselves stay active: clients rejoin, and a rejoin within the grace
    window continues the interval.
    """
    closed = 0
    for session in await store.list_active_sessions():
        last_event: dict[UserId, PresenceEvent] = {}
        for event in await store.list_presence_events(session.id):
            last_event[event.user_id] = event
        heartbeats = {
            c.user_id: c.last_seen_at for c in await store.list_presence_counters(session.id)
        }
        for user_id, event in last_event.items():
            if event.kind != "connected":
                continue
            seen = heartbeats.get(user_id)
            at = seen if seen is not None and seen > event.at else event.at
            await store.append_presence_event(
                PresenceEvent(
                    session_id=session.id,
                    class_id=session.class_id,
                    user_id=event.user_id,
                    kind="disconnected",
                    at=at,
                    reason=RESTART_REASON,
                )
            )
            closed += 1
    if closed:
        log.info("closed %d presence interval(s) left open by the last run", closed)
    return closed

"""Teacher moderation of a room, enforced by the server: who the teacher muted (and may
not unmute themselves where the class says so) and who was removed from the session."""

from __future__ import annotations

import logging
from typing import Any, Literal, get_args

from ..errors import InvalidRequest
from ..ids import UserId, is_object_id
from ..models import ActivityEvent, AttendanceSession, new_activity
from ..store import Store
from ..store.outage import outage_error

log = logging.getLogger(__name__)

Action = Literal["mute", "stop_camera", "stop_screen", "remove", "readmit", "allow_unmute"]
ACTIONS: tuple[str, ...] = get_args(Action)
BAD_ACTION = f"Invalid payload: action must be one of {', '.join(ACTIONS)}"
BAD_TARGET = "Invalid payload: give userId, or all: true with action mute"
NOT_A_STUDENT = "Invalid payload: userId must be a student of this class"
NOT_HERE = "That student is not in the room"
NOT_SHARING = "That student is not sharing a screen"
REMOVED = "You were removed from this session by the teacher"
MUTED_BY_TEACHER = "The teacher muted you; you may not unmute yourself in this class"
REMOVED_REASON = "removed by teacher"
"""Why the presence interval of a removed student ended."""


def moderation_of(data: dict[str, Any]) -> tuple[UserId | None, Action]:
    """``MODERATE``'s target (None: every student, for ``mute``) and action."""
    action = data.get("action")
    if action not in ACTIONS:
        raise InvalidRequest(BAD_ACTION)
    user_id, every = data.get("userId"), data.get("all")
    if every is True and user_id is None and action == "mute":
        return None, "mute"
    if every in (None, False) and is_object_id(user_id):
        assert isinstance(user_id, str)
        return UserId(user_id), action
    raise InvalidRequest(BAD_TARGET)


class Moderation:
    """What the teacher decided about members of one session's room, from the record."""

    def __init__(self, store: Store, session: AttendanceSession) -> None:
        self._store = store
        self._session = session
        self.removed: set[UserId] = set()
        self.muted: set[UserId] = set()
        """Muted by the teacher since they last allowed unmuting (or the student unmuted
        where the class lets them)."""
        self._restored = False

    async def restore(self) -> None:
        """Read who was removed (a room reopened after a restart); once."""
        if self._restored:
            return
        try:
            events = await self._store.list_activity(self._session.id, ["moderation"])
        except Exception as error:
            if outage_error(error) is None:
                raise
            log.warning("moderation of session %s not read: %s", self._session.id, error)
            return
        for event in events:
            self._apply(event.user_id, event.data.get("action"))
        self._restored = True

    def _apply(self, user: UserId, action: object) -> None:
        if action == "remove":
            self.removed.add(user)
        elif action == "readmit":
            self.removed.discard(user)
        elif action == "mute":
            self.muted.add(user)
        elif action == "allow_unmute":
            self.muted.discard(user)

    async def record(self, target: UserId, action: Action, by: UserId) -> ActivityEvent:
        """Store the decision, then apply it."""
        event = new_activity(self._session, target, "moderation", {"action": action, "by": by})
        await self._store.append_activity(event)
        self._apply(target, action)
        return event

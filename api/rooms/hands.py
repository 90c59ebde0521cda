"""Raised hands: a queue in the order they went up, and each change in the record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import InvalidRequest
from ..ids import UserId, is_object_id
from ..models import ActivityEvent, AttendanceSession, new_activity
from ..timeutil import iso_ms

BAD_RAISED = "Invalid payload: raised must be a boolean"
BAD_LOWER = "Invalid payload: give userId or all: true"


def raised_of(data: dict[str, Any]) -> bool:
    raised = data.get("raised")
    if not isinstance(raised, bool):
        raise InvalidRequest(BAD_RAISED)
    return raised


def lower_target(data: dict[str, Any]) -> UserId | None:
    """Whose hand ``HAND_LOWER`` lowers: a user id, or None for every hand."""
    user_id, every = data.get("userId"), data.get("all")
    if every is True and user_id is None:
        return None
    if every in (None, False) and is_object_id(user_id):
        assert isinstance(user_id, str)
        return UserId(user_id)
    raise InvalidRequest(BAD_LOWER)


class HandQueue:
    """Who has a hand up, since when, in the order they raised it."""

    def __init__(self, session: AttendanceSession) -> None:
        self._session = session
        self._raised: dict[UserId, datetime] = {}

    def queue(self) -> list[dict[str, Any]]:
        """``[{userId, at}]``, first raised first (``ROOM_JOINED.hands``, ``ROSTER.hands``)."""
        return [{"userId": user, "at": iso_ms(at)} for user, at in self._raised.items()]

    def is_raised(self, user: UserId) -> bool:
        return user in self._raised

    def raised_users(self) -> list[UserId]:
        return list(self._raised)

    def plan(self, user: UserId, raised: bool, by: UserId) -> ActivityEvent | None:
        """The record of raising or lowering `user`'s hand (`by`: who does it), or None if
        it is so already; `apply` it once the store has it."""
        if raised == (user in self._raised):
            return None
        return new_activity(self._session, user, "hand", {"raised": raised, "by": by})

    def apply(self, event: ActivityEvent) -> bool:
        """Make `event`'s change; False if another change made it meanwhile."""
        if event.data["raised"]:
            if event.user_id in self._raised:
                return False
            self._raised[event.user_id] = event.at
            return True
        return self._raised.pop(event.user_id, None) is not None


def hand_payload(event: ActivityEvent) -> dict[str, Any]:
    """The ``HAND`` event of a change."""
    return {
        "userId": event.user_id,
        "raised": event.data["raised"],
        "at": iso_ms(event.at),
        "by": event.data["by"],
    }

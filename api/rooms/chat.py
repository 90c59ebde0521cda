"""A room's chat: each message is stored with the session before the room hears of it; the
last ones are kept in memory for late joiners."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import InvalidRequest, NotFound
from ..ids import is_object_id
from ..models import ActivityEvent, AttendanceSession, User, new_activity
from ..rate_limits import Buckets
from ..store import Store
from ..store.outage import outage_error
from ..timeutil import iso_ms

log = logging.getLogger(__name__)

CHAT_MAX_CHARS = 2000
CHAT_HISTORY = 100
"""Messages a joiner gets in ``ROOM_JOINED.chat``."""
CHAT_BURST = 5
CHAT_SECONDS_PER_MESSAGE = 1.0
BAD_TEXT = f"Invalid payload: text must be 1 to {CHAT_MAX_CHARS} characters, not only whitespace"
TOO_FAST = "Too many chat messages, slow down"
BAD_MESSAGE_ID = "Invalid payload: messageId must be a message id"
NO_SUCH_MESSAGE = "No such message in this session"
CHAT_KINDS = ("chat", "chat_deleted")


def chat_text(data: dict[str, Any]) -> str:
    """The ``text`` of a ``CHAT`` event, as sent; `InvalidRequest` unless it is 1 to
    `CHAT_MAX_CHARS` characters and not only whitespace."""
    text = data.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > CHAT_MAX_CHARS:
        raise InvalidRequest(BAD_TEXT)
    return text


def message_id_of(data: dict[str, Any]) -> str:
    message_id = data.get("messageId")
    if not is_object_id(message_id):
        raise InvalidRequest(BAD_MESSAGE_ID)
    assert isinstance(message_id, str)
    return message_id


def _message(event: ActivityEvent) -> dict[str, Any]:
    """The ``CHAT`` payload of a stored message."""
    return {
        "messageId": event.id,
        "userId": event.user_id,
        "name": event.data.get("name", ""),
        "role": event.data.get("role", "student"),
        "text": event.data.get("text", ""),
        "at": iso_ms(event.at),
    }


class RoomChat:
    """The chat of one session's room: posting (rate-limited per member), deleting (the
    room checks who may), and the history late joiners get."""

    def __init__(
        self,
        store: Store,
        session: AttendanceSession,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._live: set[str] = set()
        """Ids of the session's messages not deleted (all of them, not only the recent)."""
        self._restored = False
        per_minute = 60.0 / CHAT_SECONDS_PER_MESSAGE
        self._buckets: Buckets[str] = (
            Buckets(CHAT_BURST, per_minute)
            if clock is None
            else Buckets(CHAT_BURST, per_minute, clock=clock)
        )

    async def restore(self) -> None:
        """Read what the session's chat already holds (a room reopened after a restart);
        once. While the store is unavailable the room goes on without the history."""
        if self._restored:
            return
        try:
            events = await self._store.list_activity(self._session.id, CHAT_KINDS)
        except Exception as error:
            if outage_error(error) is None:
                raise
            log.warning("chat history of session %s not read: %s", self._session.id, error)
            return
        for event in events:
            if event.kind == "chat":
                self._remember(_message(event))
            else:
                self._forget(str(event.data.get("messageId")))
        self._restored = True

    def history(self) -> list[dict[str, Any]]:
        """The last `CHAT_HISTORY` messages not deleted, oldest first."""
        return list(self._recent.values())

    async def post(self, user: User, text: str) -> dict[str, Any]:
        """Store `user`'s message and return its ``CHAT`` payload; raises `TOO_FAST` over
        the member's rate (nothing stored)."""
        self._buckets.spend(user.id, TOO_FAST)
        data = {"text": text, "name": user.name, "role": user.role}
        event = new_activity(self._session, user.id, "chat", data)
        await self._store.append_activity(event)
        message = _message(event)
        self._remember(message)
        return message

    async def delete(self, by: User, message_id: str) -> dict[str, Any]:
        """Record that `by` deleted the message and return the ``CHAT_DELETED`` payload;
        `NotFound` unless it is a message of this session not deleted yet."""
        if message_id not in self._live:
            raise NotFound(NO_SUCH_MESSAGE)
        event = new_activity(self._session, by.id, "chat_deleted", {"messageId": message_id})
        self._live.discard(message_id)  # a second delete meanwhile finds nothing
        try:
            await self._store.append_activity(event)
        except BaseException:
            self._live.add(message_id)
            raise
        self._forget(message_id)
        return {"messageId": message_id, "by": by.id, "at": iso_ms(event.at)}

    def _remember(self, message: dict[str, Any]) -> None:
        self._live.add(message["messageId"])
        self._recent[message["messageId"]] = message
        while len(self._recent) > CHAT_HISTORY:
            self._recent.popitem(last=False)

    def _forget(self, message_id: str) -> None:
        self._live.discard(message_id)
        self._recent.pop(message_id, None)

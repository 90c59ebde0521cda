"""What a room talks to without knowing what implements it: its members' sockets and the
recording running in it.

``api.ws.connection.ClientSocket`` is a :class:`RoomSocket`, ``api.recordings.live.LiveRecording``
a :class:`RoomRecording`; both packages depend on ``api.rooms``, never the other way.
"""

from __future__ import annotations

from typing import Any, Protocol

from sfu import Producer

from ..models import User


class RoomSocket(Protocol):
    """A member's connection: the room sends it room events and records which session's
    room it has joined."""

    @property
    def user(self) -> User: ...

    joined_session_id: str | None
    """The session whose room the socket is in (set by the room on join, cleared on leave)."""

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Queue one event for the client; never blocks."""


class RoomRecording(Protocol):
    """The recording of a room's media; the room tells it as producers come and go."""

    def public(self) -> dict[str, Any]:
        """``{active, recordingId}`` as ``RECORDING`` and ``ROOM_JOINED`` carry it."""

    def add_producer(self, producer: Producer) -> None: ...

    def remove_producer(self, producer: Producer) -> None: ...

    async def room_closed(self) -> None:
        """The room's media is ending: finish the recording."""

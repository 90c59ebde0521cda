"""One user's presence in a room: their socket, their media participant, their mute state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sfu import Participant

from ..models import User
from .interfaces import RoomSocket


@dataclass
class RoomMember:
    """A user who sent ``JOIN_ROOM`` and has not left; ``socket`` receives room events."""

    user: User
    socket: RoomSocket
    participant: Participant
    joined_at: datetime
    audio: bool = True
    video: bool = True
    media_connected: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {
            "userId": self.user.id,
            "name": self.user.name,
            "role": self.user.role,
            "audio": self.audio,
            "video": self.video,
        }

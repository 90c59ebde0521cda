"""Statistics snapshots of the media plane (plain frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sfu.ids import ConsumerId, MediaKind, ParticipantId, ProducerId, RouterId


@dataclass(frozen=True)
class ProducerStats:
    """One published track. `last_frame_age` tells whether media flows (camera on)."""

    producer_id: ProducerId
    participant_id: ParticipantId
    kind: MediaKind
    codec: str
    packets: int
    frames: int
    keyframes: int
    bytes: int
    late_packets: int
    skipped_frames: int
    keyframe_requests: int
    plis_sent: int
    consumers: int
    last_frame_age: float | None
    """Seconds since the last frame arrived; `None` before the first one."""


@dataclass(frozen=True)
class ConsumerStats:
    """One forwarded track towards one subscriber."""

    consumer_id: ConsumerId
    producer_id: ProducerId
    participant_id: ParticipantId
    kind: MediaKind
    state: Literal["pending", "active", "closed"]
    frames_forwarded: int
    frames_dropped: int
    keyframe_requests: int
    waiting_keyframe: bool


@dataclass(frozen=True)
class ParticipantStats:
    """A participant's peer connections and tracks."""

    participant_id: ParticipantId
    connected: bool
    publish_state: str
    subscribe_state: str
    producers: tuple[ProducerStats, ...]
    consumers: tuple[ConsumerStats, ...]


@dataclass(frozen=True)
class RouterStats:
    """A room's media at one instant."""

    router_id: RouterId
    participants: tuple[ParticipantStats, ...]

    @property
    def forwarded_frames(self) -> int:
        return sum(c.frames_forwarded for p in self.participants for c in p.consumers)

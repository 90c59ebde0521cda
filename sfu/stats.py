"""Statistics of the media plane: snapshots (plain frozen dataclasses) and the running
counts of one forwarded stream they are built from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from sfu.ids import ConsumerId, MediaKind, ParticipantId, ProducerId, RouterId, TrackSource


class LinkQuality(NamedTuple):
    """How the subscriber's receiver reports describe one forwarded stream."""

    round_trip_time: float | None
    """Seconds, smoothed like aiortc does (None before a report answered an SR)."""
    fraction_lost: float | None
    """Share of packets lost since the subscriber's previous report (0..1)."""
    packets_lost: int | None
    """Cumulative packets lost, as the subscriber counts them."""
    jitter: float | None
    """Interarrival jitter in seconds."""


NO_LINK = LinkQuality(None, None, None, None)


class SendCounts(NamedTuple):
    """What one subscriber m-section's sender has sent so far."""

    packets: int
    """RTP media packets sent (first transmissions; retransmissions not included)."""
    payload_bytes: int
    """RTP payload bytes of those packets (no RTP header, SRTP trailer or RTX)."""
    nacks: int
    """Sequence numbers the subscriber NACKed (a repeated NACK counts again)."""
    retransmissions: int
    """Packets re-sent answering those NACKs (still in the send history)."""

    def since(self, start: SendCounts) -> SendCounts:
        return SendCounts(
            self.packets - start.packets,
            self.payload_bytes - start.payload_bytes,
            self.nacks - start.nacks,
            self.retransmissions - start.retransmissions,
        )


NO_SENDS = SendCounts(0, 0, 0, 0)


@dataclass(frozen=True)
class ProducerStats:
    """One published track. `last_frame_age` tells whether media flows (camera on)."""

    producer_id: ProducerId
    participant_id: ParticipantId
    kind: MediaKind
    source: TrackSource
    layer: int
    """0 for the lowest; a source published in one track has layer 1."""
    paused: bool
    """Forwarded to nobody (`Producer.pause()`)."""
    bitrate: int
    """Payload bit/s the publisher sends (over the last second or so)."""
    frames_withheld: int
    """Frames received while paused, and packets of digital silence: never forwarded."""
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
    nacks_sent: int
    """Sequence numbers NACKed upstream to the publisher (video only: aiortc NACKs no
    audio). aiortc repeats every still-missing number whenever a new gap appears, so a
    packet missing across two gaps counts twice."""


@dataclass(frozen=True)
class ConsumerStats:
    """One forwarded track towards one subscriber.

    `packets_forwarded` and `bytes_forwarded` count first transmissions of RTP media
    packets, like the sender reports do; bytes are RTP payload bytes (with the codec's
    payload descriptor, without RTP header, header extensions, SRTP, UDP or IP), so video
    counts a few bytes per packet more than the frame bytes of `ProducerStats.bytes`.
    Re-sent packets are counted in `retransmissions` only.
    """

    consumer_id: ConsumerId
    producer_id: ProducerId
    participant_id: ParticipantId
    kind: MediaKind
    state: Literal["pending", "active", "closed"]
    frames_forwarded: int
    frames_dropped: int
    keyframe_requests: int
    waiting_keyframe: bool
    packets_forwarded: int
    """RTP packets sent to the subscriber (first transmissions)."""
    bytes_forwarded: int
    """RTP payload bytes of those packets."""
    nacks_received: int
    """Sequence numbers the subscriber NACKed (a repeated NACK counts again)."""
    retransmissions: int
    """Packets re-sent answering those NACKs (NACKed packets still in the send history)."""
    paused: bool = False
    """`Consumer.pause()` stopped forwarding (`state` still says whether it started)."""
    round_trip_time: float | None = None
    """Seconds, from the subscriber's receiver reports about this m-section's stream
    (direct send path; None until a report answered a sender report)."""
    fraction_lost: float | None = None
    """Share of packets the subscriber lost since its previous report (0..1)."""
    packets_lost: int | None = None
    """Packets lost so far as the subscriber counts them (RFC 3550: expected - received)."""
    jitter: float | None = None
    """Interarrival jitter the subscriber measures, in seconds."""
    source: TrackSource = "camera"
    layer: int | None = None
    """The layer being forwarded (None: none yet, waiting for a keyframe)."""
    target_layer: int | None = None
    """The layer it switches to at that layer's next keyframe (None: paused)."""
    layer_switches: int = 0
    """Times forwarding moved from one layer to another."""
    max_temporal_layer: int | None = None
    """The highest temporal layer forwarded (None: all)."""
    frames_thinned: int = 0
    """Frames above `max_temporal_layer`, not forwarded."""


@dataclass(frozen=True)
class ParticipantStats:
    """A participant's peer connections and tracks."""

    participant_id: ParticipantId
    connected: bool
    publish_state: str
    subscribe_state: str
    producers: tuple[ProducerStats, ...]
    consumers: tuple[ConsumerStats, ...]
    downlink_limit: float | None = None
    """bit/s its subscribe connection takes without congestion (None: not limited)."""
    downlink_remb: float | None = None
    """The subscriber's last REMB (bit/s), if it sends them."""


@dataclass(frozen=True)
class RouterStats:
    """A room's media at one instant."""

    router_id: RouterId
    participants: tuple[ParticipantStats, ...]

    @property
    def forwarded_frames(self) -> int:
        return sum(c.frames_forwarded for p in self.participants for c in p.consumers)

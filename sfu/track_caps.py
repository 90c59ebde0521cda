"""What one published track may send: a bit rate and a packet rate, each a token bucket
one second deep, so that a keyframe's burst passes and a flood does not.

The native receive path applies them in C (`sfu.native_receive.Receiver.cap`); the Python
path, where the extension is not built, applies `TrackCap` per packet. A packet over
either is dropped before anything else sees it (receive statistics, NACKs, frames) and
counted: the publisher's receiver reports then show the loss, which a compliant
encoder answers by sending less.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu import native_receive

CAP_SECONDS = 1.0
"""Depth of each bucket, in seconds of its rate (the C receiver's ``CAP_SECONDS``)."""


@dataclass(frozen=True)
class TrackCaps:
    """Per-track caps by media kind, in bits (RTP header and payload, no SRTP) and
    packets per second; 0 leaves that one uncapped. The defaults sit above what a
    compliant publisher sends: video at the REMB ceiling every publish connection is
    given (`MediaConfig.publisher_remb_ceiling`), audio at twice Opus's fullband
    stereo rate, packets at what 10 ms audio frames and 1,200-byte video packets at
    that bit rate need, with RTX repairs."""

    audio_bitrate: int = 256_000
    audio_packet_rate: int = 120
    video_bitrate: int = 5_000_000
    video_packet_rate: int = 1_000

    def __post_init__(self) -> None:
        for name in ("audio_bitrate", "audio_packet_rate", "video_bitrate", "video_packet_rate"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer (0: no cap)")

    def for_kind(self, kind: str) -> tuple[int, int]:
        """(bits/s, packets/s) for an ``"audio"`` or ``"video"`` track."""
        if kind == "audio":
            return self.audio_bitrate, self.audio_packet_rate
        return self.video_bitrate, self.video_packet_rate


NO_CAPS = TrackCaps(0, 0, 0, 0)
"""Nothing capped (a load generator's own receive path)."""


class TrackCap:
    """Both buckets of one track on the Python receive path; `admit` answers per
    packet and counts what it refuses in `refused`."""

    __slots__ = ("_bit_rate", "_bits", "_last", "_packet_rate", "_packets", "refused")

    refused_in_process = 0
    """Packets every `TrackCap` of the process refused."""

    def __init__(self, bit_rate: int, packet_rate: int, now: float) -> None:
        self._bit_rate = float(bit_rate)
        self._packet_rate = float(packet_rate)
        self._bits = self._bit_rate * CAP_SECONDS
        self._packets = self._packet_rate * CAP_SECONDS
        self._last = now
        self.refused = 0

    @property
    def capped(self) -> bool:
        """False when neither rate is capped (`admit` always says yes)."""
        return self._bit_rate > 0 or self._packet_rate > 0

    def admit(self, length: int, now: float) -> bool:
        """True when a packet of `length` bytes is within both caps (it is charged);
        False when it is refused (nothing is charged)."""
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:
            self._bits = min(self._bits + elapsed * self._bit_rate, self._bit_rate * CAP_SECONDS)
            self._packets = min(
                self._packets + elapsed * self._packet_rate, self._packet_rate * CAP_SECONDS
            )
        bits = 8.0 * length
        if (self._bit_rate > 0 and self._bits < bits) or (
            self._packet_rate > 0 and self._packets < 1
        ):
            self.refused += 1
            TrackCap.refused_in_process += 1
            return False
        if self._bit_rate > 0:
            self._bits -= bits
        if self._packet_rate > 0:
            self._packets -= 1
        return True


REFUSAL_REASONS = (
    "track_cap",
    "unknown_ssrc",
    "unnegotiated_mid",
    "unknown_codec",
    "unknown_flood",
    "rtcp_flood",
    "control_flood",
    "subscriber_rtcp_flood",
    "subscriber_control_flood",
)
"""Why a publisher's packet is dropped unread: over its track's cap; RTP of an SSRC no
negotiated track has, naming a mid the answer did not accept, of a payload type that was
not negotiated; and RTP of unknown SSRCs, RTCP or STUN/DTLS beyond what one connection
may make the server handle in Python (`sfu.native_receive`); and what a subscribe
connection sends beyond its budgets (`native_receive.ControlReader`: 400 RTCP and 50
other datagrams a second after bursts of 800 and 100)."""


def refused_packet_totals() -> dict[str, int]:
    """Packets publishers sent that this process dropped, per reason, since it started."""
    totals = dict.fromkeys(REFUSAL_REASONS, 0)
    if native_receive.AVAILABLE:
        for reason, count in native_receive.refused_totals().items():
            totals[reason] += count
    totals["track_cap"] += TrackCap.refused_in_process
    return totals

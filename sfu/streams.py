"""The state of one outgoing RTP stream and of one consumer's share of a producer's
fan-out, with one implementation in C (`sfu._fanout`'s `Stream` and `Leg`) and one in
Python (`PythonStream`, `PythonLeg`) for installs without the extension.

Why the state lives in one object per stream, owned by C where it is built: a consumer
is sent to either by the C fan-out (`sfu.fanout`, no Python per consumer) or by
`DirectRtpSender`'s Python code (a relayed route, a pending layer switch, every 32nd
frame's route check, retransmissions), and it moves between the two at any frame. If
each path kept its own numbering, history and counters they would have to be copied at
every move, and a copy forgotten at one of them would break the stream (a repeated or
skipped sequence number, a NACK unanswered, a picture id gap). With one `Stream` per
`DirectRtpSender` and one `Leg` per consumer, read and written by both paths, a move
changes only which code runs. The Python path pays an attribute access on a C object
per field, measured as cheap as on a ``__slots__`` class.
"""

from __future__ import annotations

import random
import time
from typing import Protocol

from sfu import native_send
from sfu.rtp_rewriter import PTS_STEP, RtpRewriter

_SR_UPDATE_MASK = 15
_ALL_TEMPORAL_LAYERS = 3


class StreamState(Protocol):
    """What both send paths read and write about one outgoing stream (see the module
    docstring): `sfu.rtp_rewriter.RtpRewriter`'s numbering and history, the frame count
    since the last `switch_source` (route checks and sender-report references go by it),
    the counters sender reports carry, the (wall clock, RTP timestamp) reference they
    extrapolate from, and the next VP8 picture id to send (`DirectOutput`)."""

    frames: int
    next_picture_id: int | None

    @property
    def packets_sent(self) -> int: ...

    @property
    def octets(self) -> int: ...

    @property
    def sr_wall(self) -> float | None: ...

    @property
    def sr_rtp(self) -> int: ...

    @property
    def next_sequence_number(self) -> int: ...

    def frame(
        self, pts: int, payloads: list[bytes] | tuple[bytes, ...], keyframe: bool = False, /
    ) -> tuple[int, int]: ...

    def resend(self, sequence_number: int, /) -> tuple[bytes, int, int, bool] | None: ...

    def next_rtx_sequence_number(self) -> int: ...

    def switch_source(self, gap: int = 0, /) -> None: ...

    def count_sent(self, packets: int, octets: int, timestamp: int, /) -> None:
        """A frame of `packets` packets, `octets` payload bytes at RTP `timestamp` went out
        (on the first frame after a switch and every 16th: the sender-report reference)."""
        ...


class PythonStream(RtpRewriter):
    """`StreamState` in Python: an `RtpRewriter` with the counters (no C extension)."""

    __slots__ = ("frames", "next_picture_id", "octets", "packets_sent", "sr_rtp", "sr_wall")

    def __init__(
        self, step: int, sequence_number: int, rtx_sequence_number: int, timestamp_origin: int
    ) -> None:
        super().__init__(
            step,
            sequence_number=sequence_number,
            rtx_sequence_number=rtx_sequence_number,
            timestamp_origin=timestamp_origin,
        )
        self.frames = 0
        self.packets_sent = 0
        self.octets = 0
        self.sr_wall: float | None = None
        self.sr_rtp = 0
        self.next_picture_id: int | None = None

    def count_sent(self, packets: int, octets: int, timestamp: int) -> None:
        self.packets_sent += packets
        self.octets += octets
        if self.frames & _SR_UPDATE_MASK == 1:
            self.sr_wall = time.time()
            self.sr_rtp = timestamp


def new_stream(kind: str, native: bool) -> StreamState:
    """A stream's state: the C `Stream` when `native` and the extension is built. Initial
    numbers are random (RFC 3550), drawn like `RtpRewriter`'s."""
    # 15 random bits for sequence numbers, like aiortc: far from a wrap.
    arguments = (
        PTS_STEP[kind],
        random.getrandbits(15),
        random.getrandbits(15),
        random.getrandbits(32),
    )
    if native and native_send.AVAILABLE:
        return native_send.Stream(*arguments)
    return PythonStream(*arguments)


class LegState(Protocol):
    """One consumer's temporal thinning and frame counters, read and written by
    `Consumer._deliver` and by the C fan-out; `stream`: its output's C `Stream` while it
    can be on the fan-out."""

    temporal_target: int
    temporal_current: int
    frames_forwarded: int
    frames_thinned: int
    stream: native_send.Stream | None


class PythonLeg:
    """`LegState` in Python (no C extension)."""

    __slots__ = (
        "frames_forwarded",
        "frames_thinned",
        "stream",
        "temporal_current",
        "temporal_target",
    )

    def __init__(self) -> None:
        self.stream: native_send.Stream | None = None
        self.temporal_target = self.temporal_current = _ALL_TEMPORAL_LAYERS
        self.frames_forwarded = 0
        self.frames_thinned = 0


def new_leg() -> LegState:
    """A consumer's leg: the C `Leg` where the extension is built."""
    return native_send.Leg() if native_send.AVAILABLE else PythonLeg()

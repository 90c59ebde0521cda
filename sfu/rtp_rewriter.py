"""Outgoing RTP numbering of one forwarded stream: pure logic, no aiortc (like LiveKit's
``rtpmunger``).

A subscriber's m-section carries one RTP stream for as long as it lives, whichever
producer's frames it carries in turn. `PtsRebaser` keeps its timestamps continuous across
such source switches; `RtpRewriter` also numbers the packets of each frame, remembers the
last `HISTORY_SIZE` of them for NACKs, and numbers RTX retransmissions. Everything wraps
like RTP does: sequence numbers at 16 bits, timestamps at 32.

Both run once per frame per subscriber, so they allocate no more than a tuple per frame
and do per packet only what has to be per packet (one history slot).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

SEQUENCE_MASK = 0xFFFF
_HALF_SEQUENCE = 0x8000
TIMESTAMP_MASK = 0xFFFFFFFF
HISTORY_SIZE = 128
"""Packets a NACK can still be answered for (aiortc's sender keeps as many)."""
_HISTORY_MASK = HISTORY_SIZE - 1
PTS_STEP = {"video": 3000, "audio": 960}
"""Timestamp step inserted when a stream switches source: one frame at 30 fps (90 kHz
video clock), one 20 ms Opus frame (48 kHz)."""


class PtsRebaser:
    """Maps a source's presentation timestamps onto one continuous stream.

    Frames of the first source keep their timestamps; after `switch_source`, the next
    frame is placed `step` after the last one sent, and the new source's later frames
    keep their spacing from there.
    """

    __slots__ = ("_gap", "_last", "_offset", "_step", "_switching")

    def __init__(self, step: int) -> None:
        self._step = step
        self._offset = 0
        self._last: int | None = None
        self._switching = False
        self._gap = 0

    def switch_source(self, gap: int = 0) -> None:
        """The next frame comes from another source, `gap` ticks after the last one sent
        (at least one frame step is kept). No-op before the first frame."""
        self._switching = self._last is not None
        self._gap = gap

    def rebase(self, pts: int) -> int:
        """The stream's timestamp for a frame of the current source stamped `pts`."""
        if self._switching:
            assert self._last is not None
            self._offset = self._last + max(self._step, self._gap) - pts
            self._switching = False
        pts += self._offset
        self._last = pts
        return pts


class Resend(NamedTuple):
    """What a NACKed packet was sent with, to send it again."""

    payload: bytes
    position: int
    """The packet's place in its frame (0 for the first)."""
    timestamp: int
    marker: bool
    """True for the last packet of its frame."""


class RtpRewriter(PtsRebaser):
    """Sequence numbers, RTP timestamps, NACK history and RTX numbering of one stream.

    `frame(pts, payloads)` numbers one frame: packet ``i`` gets sequence number
    ``(first + i) & 0xFFFF`` and every packet the frame's timestamp; the last carries the
    marker bit. A source switch (`switch_source`) keeps both continuous: sequence numbers
    simply go on, the timestamp advances by one frame step. Initial values are random
    (RFC 3550) unless given.
    """

    __slots__ = (
        "_history",
        "_keyframe_start",
        "_origin",
        "_rtx_sequence_number",
        "_sequence_number",
    )

    def __init__(
        self,
        step: int,
        *,
        sequence_number: int | None = None,
        rtx_sequence_number: int | None = None,
        timestamp_origin: int | None = None,
    ) -> None:
        super().__init__(step)
        # 15 random bits, like aiortc: far from a wrap, and the receiver can tell.
        self._sequence_number = (
            random.getrandbits(15) if sequence_number is None else sequence_number & SEQUENCE_MASK
        )
        self._rtx_sequence_number = (
            random.getrandbits(15)
            if rtx_sequence_number is None
            else rtx_sequence_number & SEQUENCE_MASK
        )
        self._origin = (
            random.getrandbits(32)
            if timestamp_origin is None
            else timestamp_origin & TIMESTAMP_MASK
        )
        # Per slot: (the frame's first sequence number, its timestamp, its payloads); one
        # tuple per frame, shared by the slots of its packets.
        self._history: list[tuple[int, int, Sequence[bytes]] | None] = [None] * HISTORY_SIZE
        self._keyframe_start: int | None = None

    @property
    def next_sequence_number(self) -> int:
        """The sequence number the next frame's first packet gets."""
        return self._sequence_number

    def frame(self, pts: int, payloads: Sequence[bytes], keyframe: bool = False) -> tuple[int, int]:
        """Number a frame of ``len(payloads)`` packets stamped `pts` by its source and
        remember it for NACKs; returns (its first sequence number, its RTP timestamp).
        After a `keyframe`, what was sent before it is no longer resent: the receiver
        decodes from the keyframe on, and on a congested link (a layer switch for
        bandwidth) resending the old layer's losses would only delay the keyframe."""
        timestamp = (self._origin + self.rebase(pts)) & TIMESTAMP_MASK
        first = sequence_number = self._sequence_number
        if keyframe:
            self._keyframe_start = first
        entry = (first, timestamp, payloads)
        history = self._history
        for _ in payloads:
            history[sequence_number & _HISTORY_MASK] = entry
            sequence_number = (sequence_number + 1) & SEQUENCE_MASK
        self._sequence_number = sequence_number
        return first, timestamp

    def resend(self, sequence_number: int) -> Resend | None:
        """What packet `sequence_number` was sent with, if it is still in the history
        (None once `HISTORY_SIZE` later packets took its slot, or if it was never sent)."""
        entry = self._history[sequence_number & _HISTORY_MASK]
        if entry is None:
            return None
        keyframe_start = self._keyframe_start
        if (
            keyframe_start is not None
            and 0 < (keyframe_start - sequence_number) & SEQUENCE_MASK < _HALF_SEQUENCE
        ):
            return None  # before the last keyframe: nothing needs it any more
        first, timestamp, payloads = entry
        index = (sequence_number - first) & SEQUENCE_MASK
        if index >= len(payloads):  # the slot belongs to another frame
            return None
        return Resend(payloads[index], index, timestamp, index == len(payloads) - 1)

    def next_rtx_sequence_number(self) -> int:
        """The sequence number of the next RTX packet (RTX is a stream of its own)."""
        sequence_number = self._rtx_sequence_number
        self._rtx_sequence_number = (sequence_number + 1) & SEQUENCE_MASK
        return sequence_number

"""Turning received RTP packets into encoded frames, without decoding anything.

These classes replace aiortc's jitter buffer on a forwarding path (see
`sfu.aiortc_adapter.intercept_receiver`). They are pure logic over RTP packets, so they
are tested on hand-made packet sequences.

- `VideoFrameAssembler` releases a frame as soon as its last packet (RTP marker bit) is
  in and every packet before it back to the frame start is present. Stock aiortc waits
  for the first packet of the *next* frame, one frame interval (33 ms at 30 fps) later.
  A frame with a hole waits for the retransmission (NACK is sent by aiortc's receiver)
  up to `max_wait`, then is skipped and `on_loss` is called so a keyframe is requested.
- `AudioFramePassthrough` forwards every audio packet (an Opus frame) at once: no
  prefetch, no reordering delay (stock aiortc holds about four frames, ~80 ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sfu import vp8

FrameHandler = Callable[[bytes, int, bool], None]
"""`(data, pts, keyframe)`: a complete encoded frame; `pts` counts RTP clock ticks from
the first frame of the stream (32-bit wrap-around unfolded)."""

DIGITAL_SILENCE = 127
"""The RFC 6464 level (in -dBov) of a packet carrying digital silence."""
_SEQ_MASK = 0xFFFF
_HALF_SEQ = 0x8000


class _Extensions(Protocol):
    @property
    def audio_level(self) -> tuple[bool, int] | None: ...


class Packet(Protocol):
    """The fields of `aiortc.rtp.RtpPacket` the assemblers read."""

    @property
    def sequence_number(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def ssrc(self) -> int: ...
    @property
    def marker(self) -> int: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def extensions(self) -> _Extensions: ...


class TimestampUnwrapper:
    """Maps 32-bit RTP timestamps to a monotonic count starting at 0."""

    __slots__ = ("_extended", "_last")

    def __init__(self) -> None:
        self._last: int | None = None
        self._extended = 0

    def unwrap(self, timestamp: int) -> int:
        last = self._last
        self._last = timestamp
        if last is None:
            return 0
        delta = (timestamp - last) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        self._extended += delta
        return self._extended


def vp8_is_frame_start(payload: bytes) -> bool:
    """The VP8 payload descriptor marks the start of partition 0 (S=1, PID=0)."""
    return len(payload) > 0 and payload[0] & 0x1F == 0x10


def h264_is_frame_start(payload: bytes) -> bool:
    """An H.264 RTP payload (RFC 6184) starts an access unit: it begins with an AUD, SEI,
    SPS or PPS, or with the first slice of a picture (first_mb_in_slice = 0)."""
    if len(payload) < 2:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == 24:  # STAP-A: look at the first aggregated NAL unit
        if len(payload) < 5:
            return False
        nal_type, first = payload[3] & 0x1F, payload[4]
    elif nal_type == 28:  # FU-A: only its start fragment can start a frame
        if len(payload) < 3 or not payload[1] & 0x80:
            return False
        nal_type, first = payload[1] & 0x1F, payload[2]
    else:
        first = payload[1]
    if nal_type in (6, 7, 8, 9):
        return True
    return nal_type in (1, 5) and first & 0x80 != 0


def vp8_is_keyframe(frame: bytes) -> bool:
    """A VP8 frame (payload descriptor stripped) is a keyframe (RFC 6386 9.1)."""
    return len(frame) >= 10 and frame[0] & 1 == 0 and frame[3:6] == b"\x9d\x01\x2a"


def h264_is_keyframe(frame: bytes) -> bool:
    """An H.264 access unit in Annex-B form contains an IDR slice (NAL type 5)."""
    pos = frame.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(frame):
        if frame[pos + 3] & 0x1F == 5:
            return True
        pos = frame.find(b"\x00\x00\x01", pos + 3)
    return False


_KEYFRAME_TESTS: dict[str, Callable[[bytes], bool]] = {
    "VP8": vp8_is_keyframe,
    "H264": h264_is_keyframe,
}
_FRAME_START_TESTS: dict[str, Callable[[bytes], bool]] = {
    "VP8": vp8_is_frame_start,
    "H264": h264_is_frame_start,
}


def _no_temporal_layers(payload: bytes) -> tuple[int, bool]:
    return vp8.NO_TEMPORAL


_TEMPORAL_LAYER_OF: dict[str, Callable[[bytes], tuple[int, bool]]] = {
    "VP8": vp8.temporal_layer,
    "H264": _no_temporal_layers,
}


class VideoFrameAssembler:
    """Reassembles video frames from RTP packets and releases them on the marker bit.

    `codec` is ``"VP8"`` or ``"H264"``. `on_loss` is called when a frame had to be
    skipped (the stream needs a keyframe to be decodable again). While `on_frame` runs,
    `frame_temporal` is the frame's temporal layer (0 for a stream without any) and
    `frame_layer_sync` whether it depends on temporal layer 0 only.
    """

    CAPACITY = 512  # packets; a power of two dividing 65536

    def __init__(
        self,
        codec: str,
        on_frame: FrameHandler,
        on_loss: Callable[[], None],
        max_wait: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if codec not in _KEYFRAME_TESTS:
            raise ValueError(f"no frame assembly for codec {codec!r}")
        self._is_keyframe = _KEYFRAME_TESTS[codec]
        self._is_frame_start = _FRAME_START_TESTS[codec]
        self._temporal_layer_of = _TEMPORAL_LAYER_OF[codec]
        self.frame_temporal = 0
        self.frame_layer_sync = False
        self._on_frame = on_frame
        self._on_loss = on_loss
        self._max_wait = max_wait
        self._clock = clock
        self._mask = self.CAPACITY - 1
        self._packets: list[Packet | None] = [None] * self.CAPACITY
        self._data: list[bytes] = [b""] * self.CAPACITY
        self._head: int | None = None  # first sequence number of the next frame
        self._hole: int | None = None  # where the last scan stopped on a missing packet
        self._blocked_since: float | None = None
        self._held = 0  # packets in the buffer (not yet released or dropped)
        self._timestamps = TimestampUnwrapper()
        self.packets = 0
        self.frames = 0
        self.keyframes = 0
        self.late_packets = 0
        self.skipped = 0
        self.unaligned_packets = 0
        """Packets dropped because they came before any frame's first packet (the start
        of the stream was lost, or it was joined mid-frame)."""

    def push(self, packet: Packet, data: bytes) -> None:
        """Add one packet (RTX unwrapped) with its depayloaded payload."""
        self.packets += 1
        self._push(packet, data)

    def _push(self, packet: Packet, data: bytes) -> None:
        seq = packet.sequence_number
        head = self._head
        if head is None:
            if self._is_frame_start(packet.payload):
                head = self._head = seq
            else:
                self.unaligned_packets += 1
                if packet.marker:
                    self._head = (seq + 1) & _SEQ_MASK
                return
        offset = (seq - head) & _SEQ_MASK
        if offset >= _HALF_SEQ:
            self.late_packets += 1
            return
        if offset >= self.CAPACITY:
            self._lose_sync()
            self._push(packet, data)
            return
        index = seq & self._mask
        if self._packets[index] is not None:
            return  # duplicate
        self._packets[index] = packet
        self._data[index] = data
        self._held += 1
        if packet.marker or seq == self._hole or offset == 0:
            self._release()
        if self._blocked_since is not None and self._clock() - self._blocked_since > self._max_wait:
            self._skip()

    def _release(self) -> None:
        packets = self._packets
        mask = self._mask
        while self._head is not None:
            head = self._head
            first = packets[head & mask]
            if first is None:
                if self._held:
                    self._block(head)
                else:
                    # Nothing after it either: the stream is idle, not missing a packet
                    # (a publisher that paused must not lose its next frame to the wait).
                    self._hole = head
                return
            timestamp = first.timestamp
            seq = head
            end = -1
            for _ in range(self.CAPACITY):
                packet = packets[seq & mask]
                if packet is None:
                    self._block(seq)
                    return
                if packet.timestamp != timestamp:
                    end = (seq - 1) & _SEQ_MASK  # the sender did not set the marker bit
                    break
                if packet.marker:
                    end = seq
                    break
                seq = (seq + 1) & _SEQ_MASK
            if end < 0:
                self._lose_sync()
                return
            self._emit(head, end, timestamp)

    def _emit(self, head: int, end: int, timestamp: int) -> None:
        packets = self._packets
        data = self._data
        mask = self._mask
        count = ((end - head) & _SEQ_MASK) + 1
        self._held -= count
        first = packets[head & mask]
        assert first is not None
        self.frame_temporal, self.frame_layer_sync = self._temporal_layer_of(first.payload)
        if count == 1:
            index = head & mask
            frame = data[index]
            packets[index] = None
            data[index] = b""
        else:
            parts = []
            seq = head
            for _ in range(count):
                index = seq & mask
                parts.append(data[index])
                packets[index] = None
                data[index] = b""
                seq = (seq + 1) & _SEQ_MASK
            frame = b"".join(parts)
        self._head = (end + 1) & _SEQ_MASK
        self._hole = None
        self._blocked_since = None
        keyframe = self._is_keyframe(frame)
        self.frames += 1
        if keyframe:
            self.keyframes += 1
        self._on_frame(frame, self._timestamps.unwrap(timestamp), keyframe)

    def _block(self, hole: int) -> None:
        self._hole = hole
        if self._blocked_since is None:
            self._blocked_since = self._clock()

    def _is_start(self, seq: int) -> bool:
        packet = self._packets[seq & self._mask]
        if packet is None:
            return False
        if self._is_frame_start(packet.payload):
            return True
        previous = self._packets[(seq - 1) & self._mask]
        return previous is not None and (
            previous.marker != 0 or previous.timestamp != packet.timestamp
        )

    def _skip(self) -> None:
        """Give up on the blocked frame: resume at the next frame start after the hole."""
        assert self._head is not None and self._hole is not None
        self.skipped += 1
        hole = self._hole
        resume = None
        for i in range(1, self.CAPACITY):
            seq = (hole + i) & _SEQ_MASK
            if ((seq - self._head) & _SEQ_MASK) >= self.CAPACITY:
                break
            if self._is_start(seq):
                resume = seq
                break
        if resume is None:
            self._lose_sync()
            return
        self._clear(self._head, resume)
        self._head = resume
        self._hole = None
        self._blocked_since = None
        self._on_loss()
        self._release()

    def _clear(self, start: int, stop: int) -> None:
        seq = start
        while seq != stop:
            index = seq & self._mask
            if self._packets[index] is not None:
                self._held -= 1
            self._packets[index] = None
            self._data[index] = b""
            seq = (seq + 1) & _SEQ_MASK

    def _lose_sync(self) -> None:
        self._packets = [None] * self.CAPACITY
        self._data = [b""] * self.CAPACITY
        self._held = 0
        self._head = None
        self._hole = None
        self._blocked_since = None
        self.skipped += 1
        self._on_loss()


class AudioFramePassthrough:
    """Forwards each audio packet as a frame at once; reports RFC 6464 audio levels.

    A packet older than the last one forwarded is dropped (its turn has passed);
    `on_level(level, voice)` gets the level in -dBov (0 loudest, 127 silence) when the
    publisher sends the ``ssrc-audio-level`` header extension. A packet whose level says
    digital silence (-127 dBov: a muted track still sending) goes to `on_silence` instead
    of `on_frame`: there is nothing in it worth forwarding.
    """

    def __init__(
        self,
        on_frame: FrameHandler,
        on_level: Callable[[int, bool], None] | None = None,
        on_silence: Callable[[], None] | None = None,
    ) -> None:
        self._on_frame = on_frame
        self._on_level = on_level
        self._on_silence = on_silence
        self._last_seq: int | None = None
        self._timestamps = TimestampUnwrapper()
        self.packets = 0
        self.frames = 0
        self.late_packets = 0
        self.silent_frames = 0

    def push(self, packet: Packet, data: bytes) -> None:
        """Add one packet with its payload (an Opus frame)."""
        self.packets += 1
        seq = packet.sequence_number
        last = self._last_seq
        if last is not None:
            offset = (seq - last) & _SEQ_MASK
            if offset == 0 or offset >= _HALF_SEQ:
                self.late_packets += 1
                return
        self._last_seq = seq
        level = packet.extensions.audio_level
        pts = self._timestamps.unwrap(packet.timestamp)
        if level is not None:
            if self._on_level is not None:
                self._on_level(level[1], level[0])
            if level[1] == DIGITAL_SILENCE and self._on_silence is not None:
                self.silent_frames += 1
                self._on_silence()
                return
        self.frames += 1
        self._on_frame(data, pts, True)

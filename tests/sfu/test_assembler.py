"""Frame assembly on hand-made RTP packet sequences (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.assembler import (
    AudioFramePassthrough,
    TimestampUnwrapper,
    VideoFrameAssembler,
    h264_is_frame_start,
    h264_is_keyframe,
    vp8_is_keyframe,
)

VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01]) + b"K" * 20
VP8_DELTA = bytes([0x11]) + b"D" * 29


@dataclass
class Ext:
    audio_level: tuple[bool, int] | None = None


@dataclass
class Pkt:
    sequence_number: int
    timestamp: int
    marker: int
    payload: bytes
    ssrc: int = 1
    extensions: Ext = field(default_factory=Ext)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def vp8_frame(seq: int, ts: int, parts: list[bytes]) -> list[tuple[Pkt, bytes]]:
    """Packets of one VP8 frame: a 1-byte descriptor (S bit on the first) + data."""
    out = []
    for i, data in enumerate(parts):
        descriptor = bytes([0x10 if i == 0 else 0x00])
        out.append((Pkt((seq + i) & 0xFFFF, ts, int(i == len(parts) - 1), descriptor + data), data))
    return out


class Collector:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, bool]] = []
        self.losses = 0

    def frame(self, data: bytes, pts: int, keyframe: bool) -> None:
        self.frames.append((data, pts, keyframe))

    def loss(self) -> None:
        self.losses += 1


def make(clock: Clock | None = None) -> tuple[VideoFrameAssembler, Collector]:
    out = Collector()
    return VideoFrameAssembler("VP8", out.frame, out.loss, 0.3, clock or Clock()), out


def test_a_frame_is_released_on_its_marker_packet_not_on_the_next_frame() -> None:
    assembler, out = make()
    packets = vp8_frame(100, 9000, [VP8_KEY[:10], VP8_KEY[10:20], VP8_KEY[20:]])
    for packet, data in packets[:-1]:
        assembler.push(packet, data)
    assert out.frames == []
    assembler.push(*packets[-1])
    assert out.frames == [(VP8_KEY, 0, True)]


def test_frames_are_released_in_order_after_reordering_and_a_retransmission() -> None:
    assembler, out = make()
    first = vp8_frame(65534, 1000, [VP8_KEY[:15], VP8_KEY[15:]])  # wraps the sequence number
    second = vp8_frame(0, 4000, [VP8_DELTA[:10], VP8_DELTA[10:]])
    third = vp8_frame(2, 7000, [VP8_DELTA])
    assembler.push(*first[0])
    assembler.push(*second[1])
    assembler.push(*third[0])  # complete, but must wait for the frames before it
    assert out.frames == []
    assembler.push(*first[1])
    assert [f[1] for f in out.frames] == [0]
    assembler.push(*second[0])  # the "retransmission" fills the hole
    assert [f[1] for f in out.frames] == [0, 3000, 6000]
    assert [f[2] for f in out.frames] == [True, False, False]
    assembler.push(*first[0])  # late duplicate of a released packet
    assert assembler.late_packets == 1


def test_a_stream_whose_first_packet_was_lost_starts_at_the_next_frame_and_says_so() -> None:
    assembler, out = make()
    keyframe = vp8_frame(50, 0, [VP8_KEY[:15], VP8_KEY[15:]])
    assembler.push(*keyframe[1])  # the keyframe's first packet never arrives
    delta = vp8_frame(52, 3000, [VP8_DELTA])
    assembler.push(*delta[0])
    assert [f[2] for f in out.frames] == [False]
    assert assembler.unaligned_packets == 1 and assembler.skipped == 0


def test_a_frame_missing_a_packet_for_too_long_is_skipped_and_reported() -> None:
    clock = Clock()
    assembler, out = make(clock)
    for packet, data in vp8_frame(10, 0, [VP8_KEY]):
        assembler.push(packet, data)
    lost = vp8_frame(11, 3000, [VP8_DELTA[:10], VP8_DELTA[10:]])
    assembler.push(*lost[1])  # first packet never arrives
    following = vp8_frame(13, 6000, [VP8_DELTA])
    assembler.push(*following[0])
    assert len(out.frames) == 1 and out.losses == 0
    clock.now = 0.5
    assembler.push(*vp8_frame(14, 9000, [VP8_DELTA])[0])
    assert out.losses == 1
    assert [f[1] for f in out.frames] == [0, 6000, 9000]
    assert assembler.skipped == 1


def test_a_pause_in_the_stream_is_not_a_missing_packet() -> None:
    # The sender stopped for longer than the wait (a paused consumer, a muted camera):
    # its next multi-packet frame is released, not skipped for a hole that never was.
    clock = Clock()
    assembler, out = make(clock)
    for packet, data in vp8_frame(10, 0, [VP8_KEY]):
        assembler.push(packet, data)
    clock.now = 2.0
    resumed = vp8_frame(11, 180000, [VP8_KEY[:10], VP8_KEY[10:20], VP8_KEY[20:]])
    for packet, data in resumed:
        assembler.push(packet, data)
    assert [f[2] for f in out.frames] == [True, True]
    assert out.losses == 0 and assembler.skipped == 0


def test_a_stream_is_picked_up_at_the_first_frame_start() -> None:
    assembler, out = make()
    middle = vp8_frame(50, 0, [VP8_KEY[:10], VP8_KEY[10:]])
    assembler.push(*middle[1])  # joined mid-frame: ignored
    for packet, data in vp8_frame(52, 3000, [VP8_DELTA]):
        assembler.push(packet, data)
    assert [f[2] for f in out.frames] == [False]


def test_h264_frames_are_delimited_by_marker_bits_and_idr_is_a_keyframe() -> None:
    out = Collector()
    assembler = VideoFrameAssembler("H264", out.frame, out.loss)
    idr = b"\x00\x00\x00\x01\x67SPS\x00\x00\x00\x01\x68PPS\x00\x00\x00\x01\x65IDR"
    non_idr = b"\x00\x00\x00\x01\x41P"
    assembler.push(Pkt(1, 0, 1, b"\x41x"), non_idr)  # before sync: only marks the boundary
    assembler.push(Pkt(2, 3000, 0, b"\x67"), idr[:8])
    assembler.push(Pkt(3, 3000, 1, b"\x65"), idr[8:])
    assembler.push(Pkt(4, 6000, 1, b"\x41"), non_idr)
    assert out.frames == [(idr, 0, True), (non_idr, 3000, False)]
    assert h264_is_keyframe(idr) and not h264_is_keyframe(non_idr)


def test_vp8_keyframe_detection_reads_the_frame_tag() -> None:
    assert vp8_is_keyframe(VP8_KEY)
    assert not vp8_is_keyframe(VP8_DELTA)
    assert not vp8_is_keyframe(b"\x00")


def test_rtp_timestamps_unwrap_across_32_bits() -> None:
    unwrap = TimestampUnwrapper()
    assert unwrap.unwrap(0xFFFFF000) == 0
    assert unwrap.unwrap(0x00000800) == 0x1800
    assert unwrap.unwrap(0x00000400) == 0x1400  # slightly older timestamps go back


def test_audio_is_forwarded_at_once_without_late_or_duplicate_packets() -> None:
    frames: list[tuple[bytes, int, bool]] = []
    levels: list[tuple[int, bool]] = []
    audio = AudioFramePassthrough(
        lambda d, p, k: frames.append((d, p, k)), lambda lv, v: levels.append((lv, v))
    )
    audio.push(Pkt(10, 960, 1, b"a", extensions=Ext((True, 30))), b"a")
    audio.push(Pkt(12, 2880, 1, b"c"), b"c")
    audio.push(Pkt(11, 1920, 1, b"b"), b"b")  # late: its turn has passed
    audio.push(Pkt(12, 2880, 1, b"c"), b"c")  # duplicate
    audio.push(Pkt(13, 3840, 1, b"d", extensions=Ext((False, 90))), b"d")
    assert frames == [(b"a", 0, True), (b"c", 1920, True), (b"d", 2880, True)]
    assert levels == [(30, True), (90, False)]
    assert audio.late_packets == 2


def test_h264_frame_starts_are_recognised_in_every_packetization() -> None:
    assert h264_is_frame_start(b"\x67\x42")  # SPS
    assert h264_is_frame_start(b"\x65\x88")  # IDR slice, first_mb_in_slice = 0
    assert not h264_is_frame_start(b"\x41\x08")  # a later slice of the picture
    assert h264_is_frame_start(b"\x18\x00\x04\x67\x42\x00\x1f")  # STAP-A with SPS first
    assert h264_is_frame_start(b"\x7c\x85\x88")  # FU-A start of an IDR slice
    assert not h264_is_frame_start(b"\x7c\x05\x88")  # FU-A continuation
    assert not h264_is_frame_start(b"\x7c")

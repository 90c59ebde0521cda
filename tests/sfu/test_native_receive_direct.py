"""The native receiver's direct hand-off (`Receiver.direct`, `Receiver.take`): with a
recording callable standing in for `sfu.native_send.fanout`, what each frame hands on,
what comes to Python instead (keyframes, reports), and what is tallied."""

from __future__ import annotations

import socket
from typing import Any

import pylibsrtp
import pytest

from sfu import native_receive
from tests.sfu.receive_reference import (
    OPUS_SPEC,
    VP8_SPEC,
    Packet,
    configure,
    level_extension,
    new_receiver,
    require_native_receive,
)

KEY_HEADER = b"\x00\x00\x00\x9d\x01\x2a\x40\x01\xf0\x00"
LEGS = ("leg-a", "leg-b")
KEY = bytes(range(30))


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_native_receive()


class RecordingFanout:
    """Records its calls; answers `answer` (None: nothing to report)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.answer: list[tuple[int, int]] | None = None

    def __call__(self, *args: Any) -> list[tuple[int, int]] | None:
        self.calls.append(args)
        return self.answer


def vp8(seq: int, body: bytes, ts: int, picture_id: int = 0x123, tid: int = 1) -> bytes:
    """One-packet VP8 frame with a 15-bit picture id and a temporal layer index."""
    descriptor = bytes((0x90, 0xA0, 0x80 | picture_id >> 8, picture_id & 0xFF, tid << 6))
    spec = VP8_SPEC
    return bytes(Packet(spec.ssrc, spec.payload_type, seq, ts, True, descriptor + body))


def opus(seq: int, level: int) -> bytes:
    spec = OPUS_SPEC
    return bytes(
        Packet(
            spec.ssrc,
            spec.payload_type,
            seq,
            960 * seq,
            False,
            b"op%d" % seq,
            extension=level_extension(level, voice=level < 40),
        )
    )


def receiver_with(fanout: RecordingFanout) -> Any:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC, OPUS_SPEC])
    receiver.direct(VP8_SPEC.ssrc, fanout, LEGS, True)
    receiver.direct(OPUS_SPEC.ssrc, fanout, LEGS, True)
    return receiver


def test_video_keyframes_come_to_python_and_the_other_frames_go_to_the_fanout() -> None:
    fanout = RecordingFanout()
    receiver = receiver_with(fanout)
    [key] = receiver.feed_plain(vp8(1, KEY_HEADER, 0, tid=0))
    assert key[0] == native_receive.FRAME and key[4] is True
    assert fanout.calls == []

    assert receiver.feed_plain(vp8(2, b"\x01delta", 3000, picture_id=0x124)) == []
    [(legs, payloads, pts, keyframe, picture_id, temporal, gso, route_check)] = fanout.calls
    assert legs is LEGS and gso is True
    assert payloads == (vp8(2, b"\x01delta", 3000, picture_id=0x124)[12:],)
    assert (pts, keyframe, picture_id, temporal) == (3000, False, 0x124, 1)
    assert route_check is False  # the stream's second frame: only every 32nd checks

    tally = native_receive.Tally._make(receiver.take(VP8_SPEC.ssrc))
    assert (tally.frames, tally.keyframes, tally.bytes) == (1, 0, len(payloads[0]))
    assert tally.temporal_frames == (0, 1, 0, 0)
    assert tally.temporal_bytes == (0, len(payloads[0]), 0, 0)
    assert tally.last_frame > 0 and tally.level_min == -1 and tally.silent == 0
    assert receiver.take(VP8_SPEC.ssrc) is None  # taken: a new tally starts empty
    # The C counters count every frame, handed off or not.
    assert receiver.counts(VP8_SPEC.ssrc)["frames"] == 2


def test_a_frame_the_fanout_reports_on_comes_to_python_with_its_legs() -> None:
    fanout = RecordingFanout()
    receiver = receiver_with(fanout)
    receiver.feed_plain(vp8(1, KEY_HEADER, 0, tid=0))
    fanout.answer = [(1, -2)]
    [event] = receiver.feed_plain(vp8(2, b"\x01delta", 3000))
    tag, token, report, legs, payloads, pts, keyframe, temporal, sync = event
    assert (tag, token, report, legs) == (native_receive.REPORT, "vp8", [(1, -2)], LEGS)
    assert payloads == fanout.calls[0][1]
    assert (pts, keyframe, temporal, sync) == (3000, False, 1, False)
    assert receiver.take(VP8_SPEC.ssrc)[0] == 1  # handed off: tallied as well


def test_audio_frames_go_to_the_fanout_and_levels_and_silence_are_tallied() -> None:
    fanout = RecordingFanout()
    receiver = receiver_with(fanout)
    events = []
    for seq, level in ((1, 30), (2, 50), (3, 127), (4, 20)):
        events += receiver.feed_plain(opus(seq, level))
    assert events == []  # no LEVEL, SILENCE or FRAME events
    assert [call[1] for call in fanout.calls] == [(b"op1",), (b"op2",), (b"op4",)]
    assert {(call[3], call[4], call[5]) for call in fanout.calls} == {(True, None, 0)}
    tally = native_receive.Tally._make(receiver.take(OPUS_SPEC.ssrc))
    assert (tally.frames, tally.keyframes, tally.bytes) == (3, 3, 9)
    assert (tally.level_min, tally.voice, tally.silent) == (20, True, 1)
    assert tally.last_silent > 0


def test_ending_the_hand_off_brings_every_frame_back_to_python() -> None:
    fanout = RecordingFanout()
    receiver = receiver_with(fanout)
    receiver.feed_plain(opus(1, 30))
    receiver.direct(OPUS_SPEC.ssrc, None)
    events = receiver.feed_plain(opus(2, 30))
    assert [e[0] for e in events] == [native_receive.LEVEL, native_receive.FRAME]
    assert len(fanout.calls) == 1
    assert receiver.take(OPUS_SPEC.ssrc)[0] == 1  # what it did before is still there


def test_a_failing_fanout_raises_and_the_receiver_goes_on() -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("fan-out broke")

    receiver = new_receiver()
    configure(receiver, [OPUS_SPEC])
    receiver.direct(OPUS_SPEC.ssrc, broken, LEGS, False)
    with pytest.raises(RuntimeError, match="fan-out broke"):
        receiver.feed_plain(opus(1, 30))
    receiver.direct(OPUS_SPEC.ssrc, None)
    assert [e[0] for e in receiver.feed_plain(opus(2, 30))][-1] == native_receive.FRAME


def test_bad_arguments_are_refused() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC])
    with pytest.raises(ValueError, match="no media stream"):
        receiver.direct(0x1234, RecordingFanout(), LEGS)
    with pytest.raises(TypeError, match="legs a tuple"):
        receiver.direct(VP8_SPEC.ssrc, RecordingFanout(), list(LEGS))
    with pytest.raises(TypeError, match="callable"):
        receiver.direct(VP8_SPEC.ssrc, 5, LEGS)
    assert receiver.take(0x1234) is None


def test_after_a_loss_frames_come_to_python_until_the_next_keyframe() -> None:
    fanout = RecordingFanout()
    receiver = receiver_with(fanout)
    receiver.feed_plain(vp8(10, KEY_HEADER, 0, tid=0))
    receiver.feed_plain(vp8(11, b"\x01a", 3000))
    assert len(fanout.calls) == 1
    # A jump past the buffer: the frames are lost for good, a keyframe is needed.
    events = receiver.feed_plain(vp8(11 + 600, b"\x01b", 6000))
    assert [e[0] for e in events] == [
        native_receive.NACK,
        native_receive.LOSS,
        native_receive.FRAME,  # not handed off: Python withholds it until a keyframe
    ]
    assert [e[0] for e in receiver.feed_plain(vp8(612, b"\x01c", 9000))] == [native_receive.FRAME]
    [key] = receiver.feed_plain(vp8(613, KEY_HEADER, 12000, tid=0))
    assert key[0] == native_receive.FRAME and key[4] is True
    assert receiver.feed_plain(vp8(614, b"\x01d", 15000)) == []
    assert len(fanout.calls) == 2


def test_a_fanout_cannot_change_the_receiver_under_its_own_frame() -> None:
    receiver = new_receiver()
    configure(receiver, [OPUS_SPEC])

    def meddling(*args: Any) -> None:
        receiver.remove(OPUS_SPEC.ssrc)

    receiver.direct(OPUS_SPEC.ssrc, meddling, LEGS, False)
    with pytest.raises(RuntimeError, match="while it handles datagrams"):
        receiver.feed_plain(opus(1, 30))
    assert receiver.ssrcs == [OPUS_SPEC.ssrc]  # still there, and still usable
    receiver.direct(OPUS_SPEC.ssrc, None)
    assert receiver.feed_plain(opus(2, 30))[-1][0] == native_receive.FRAME


def test_with_no_legs_frames_are_only_tallied() -> None:
    """Nobody takes the stream (a layer no subscriber is on): frames are counted, not
    handed to anyone, and only keyframes come to Python."""
    fanout = RecordingFanout()
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC, OPUS_SPEC])
    receiver.direct(VP8_SPEC.ssrc, fanout, (), False)
    receiver.direct(OPUS_SPEC.ssrc, fanout, (), False)
    [key] = receiver.feed_plain(vp8(1, KEY_HEADER, 0, tid=0))
    assert key[0] == native_receive.FRAME and key[4] is True
    deltas = [vp8(seq, b"\x01delta%d" % seq, 3000 * seq) for seq in range(2, 6)]
    for packet in deltas:
        assert receiver.feed_plain(packet) == []
    assert receiver.feed_plain(opus(1, 30)) == []
    assert fanout.calls == []
    video = native_receive.Tally._make(receiver.take(VP8_SPEC.ssrc))
    assert (video.frames, video.keyframes) == (4, 0)
    assert video.bytes == sum(len(packet) - 12 for packet in deltas)
    audio = native_receive.Tally._make(receiver.take(OPUS_SPEC.ssrc))
    assert (audio.frames, audio.bytes, audio.level_min) == (1, 3, 30)


def test_the_frames_after_a_keyframe_in_the_same_read_come_to_python() -> None:
    """Python may switch a subscriber to this stream when it handles the keyframe: the
    frames read with it must reach Python after it, not the fan-out before it."""
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    fanout = RecordingFanout()
    receiver = new_receiver(session=rx)
    configure(receiver, [VP8_SPEC])
    receiver.direct(VP8_SPEC.ssrc, fanout, LEGS, False)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sender.connect(sock.getsockname())
        for packet in (
            vp8(1, KEY_HEADER, 0, tid=0),
            vp8(2, b"\x01a", 3000),
            vp8(3, b"\x01b", 6000),
        ):
            sender.send(tx.protect(packet))
        events = receiver.drain(sock.fileno())
        assert [(event[0], event[4]) for event in events] == [
            (native_receive.FRAME, True),
            (native_receive.FRAME, False),
            (native_receive.FRAME, False),
        ]
        assert fanout.calls == []
        sender.send(tx.protect(vp8(4, b"\x01c", 9000)))
        assert receiver.drain(sock.fileno()) == []  # the next read hands off again
        assert len(fanout.calls) == 1

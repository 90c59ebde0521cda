"""sfu._fanout's Stream, Leg and fanout() on real SRTP sessions and loopback sockets.

`Reference` is the per-consumer Python path (`Consumer._deliver`'s temporal thinning,
`DirectOutput.push`'s picture ids, `DirectRtpSender.send_frame` with `PythonStream`
numbering, `lean_protect` and one datagram per packet) written out; the fan-out's
datagrams, NACK answers and counters must be those, byte for byte (abs-send-time, a
clock reading, is checked against the clock instead).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pylibsrtp
import pytest

from sfu import native_send, vp8
from sfu.aiortc_adapter import lean_protect, srtp_pointers
from sfu.direct_send import abs_send_time, header_extensions
from sfu.payloads import RtpPayloads
from sfu.rtp_rewriter import PTS_STEP, Resend
from sfu.streams import PythonStream
from tests.native_extensions import require_extension

PT = 96
VIDEO = PTS_STEP["video"]
SO_NO_CHECK = 11  # asm-generic/socket.h: UDP GSO refuses such a socket (EINVAL)


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_extension(native_send.AVAILABLE, "sfu._fanout")


@dataclass
class Subscriber:
    """One stream: a C Stream and its leg, the reference path's state, a receiver."""

    ssrc: int
    extension: bytes
    send_time_at: int | None
    receiver: socket.socket
    sender: socket.socket
    key: bytes
    stream: native_send.Stream = field(init=False)
    leg: native_send.Leg = field(init=False)
    python: PythonStream = field(init=False)
    temporal_target: int = 3
    temporal_current: int = 3
    forwarded: int = 0
    thinned: int = 0

    def __post_init__(self) -> None:
        numbers = (random.getrandbits(16), random.getrandbits(16), random.getrandbits(32))
        self.stream = native_send.Stream(VIDEO, *numbers)
        self.python = PythonStream(VIDEO, *numbers)
        self.leg = native_send.Leg()
        self.leg.stream = self.stream
        first_byte = 0x90 if self.extension else 0x80
        at = -1 if self.send_time_at is None else self.send_time_at
        self.stream.bind(self.ssrc, PT, first_byte, self.extension, at)
        self.session = session(self.key, outbound=True)
        self.reference_session = session(self.key, outbound=True)
        self.inbound = session(self.key, outbound=False)
        address = native_send.sockaddr(*self.receiver.getsockname()[:2])
        self.stream.set_route(self, self.sender.fileno(), address, *srtp_pointers(self.session))

    def receive(self, count: int) -> list[bytes]:
        self.receiver.settimeout(2.0)
        datagrams = [self.receiver.recv(65536) for _ in range(count)]
        self.receiver.setblocking(False)  # loopback queues a datagram within its send
        with pytest.raises(BlockingIOError):
            self.receiver.recv(65536)
        return datagrams

    def reference(
        self, items: list[bytes], pts: int, keyframe: bool, picture_id: int | None, temporal: int
    ) -> list[bytes] | None:
        """The per-consumer Python path's packets (unprotected), None: thinned."""
        if temporal == 0:
            self.temporal_current = self.temporal_target
        elif temporal > self.temporal_current:
            self.thinned += 1
            return None
        payloads = RtpPayloads(items)
        next_id = None
        if picture_id is not None:
            next_id = self.python.next_picture_id
            if next_id is None:
                next_id = picture_id
            elif next_id != picture_id:
                payloads = RtpPayloads([vp8.with_picture_id(item, next_id) for item in items])
        python = self.python
        python.frames += 1
        seq, timestamp = python.frame(pts, payloads.items, keyframe)
        packets = []
        for i, payload in enumerate(payloads.items):
            marker = 0x80 if i == len(payloads.items) - 1 else 0
            header = struct.pack(
                "!BBHII", 0x90 if self.extension else 0x80, marker | PT, seq, timestamp, self.ssrc
            )
            packets.append(header + self.extension + payload)
            seq = (seq + 1) & 0xFFFF
        python.count_sent(len(payloads.items), payloads.size, timestamp)
        if next_id is not None:
            python.next_picture_id = (next_id + 1) & vp8.PICTURE_ID_MASK
        self.forwarded += 1
        return packets


def session(key: bytes, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    policy = pylibsrtp.Policy(key=key, ssrc_type=kind)
    policy.allow_repeat_tx = True  # as aiortc's: a frame GSO refused is protected again
    return pylibsrtp.Session(policy)


@contextlib.contextmanager
def subscribers(count: int, abs_send_time_id: int | None = None) -> Iterator[list[Subscriber]]:
    with contextlib.ExitStack() as stack:
        made = []
        for i in range(count):
            receiver = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            receiver.bind(("127.0.0.1", 0))
            sender = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sender.setblocking(False)
            extension, at = header_extensions(1 + i % 2, str(i), abs_send_time_id)
            made.append(Subscriber(0x1000 + i, extension, at, receiver, sender, os.urandom(30)))
        yield made


def vp8_frame(
    picture_id: int, temporal: int, sizes: list[int], short_id: bool = False
) -> list[bytes]:
    """VP8 payloads with a descriptor carrying the picture id (7 or 15 bits) and TID."""
    pid = (
        bytes([picture_id & 0x7F])
        if short_id
        else bytes([0x80 | picture_id >> 8, picture_id & 0xFF])
    )
    items = []
    for i, size in enumerate(sizes):
        descriptor = bytes([0x90 if i == 0 else 0x80, 0xA0]) + pid + bytes([temporal << 6])
        items.append(descriptor + bytes([(picture_id + i) % 251]) * size)
    return items


def deliver_in_python(
    sub: Subscriber,
    items: list[bytes],
    pts: int,
    keyframe: bool,
    picture_id: int | None,
    temporal: int,
) -> None:
    """`Consumer._deliver` -> `DirectOutput.push` -> `DirectRtpSender.send_frame` on the
    same state (the native route's branch)."""
    leg, stream = sub.leg, sub.stream
    if temporal == 0:
        leg.temporal_current = leg.temporal_target
    elif temporal > leg.temporal_current:
        leg.frames_thinned += 1
        return
    next_id = None
    if picture_id is not None:
        next_id = stream.next_picture_id
        if next_id is None:
            next_id = picture_id
        elif next_id != picture_id:
            items = [vp8.with_picture_id(item, next_id) for item in items]
    stream.frames += 1
    assert stream.send(items, pts, keyframe, RtpPayloads(items).uniform) == 0
    if next_id is not None:
        stream.next_picture_id = (next_id + 1) & vp8.PICTURE_ID_MASK
    leg.frames_forwarded += 1


def check_datagrams(
    subscriber: Subscriber,
    datagrams: list[bytes],
    expected: list[bytes],
    window: tuple[float, float],
) -> None:
    assert len(datagrams) == len(expected)
    at = subscriber.send_time_at
    for datagram, packet in zip(datagrams, expected, strict=True):
        plain = subscriber.inbound.unprotect(datagram)
        if at is None:
            assert plain == packet
            assert datagram == lean_protect(subscriber.reference_session)(packet)
            continue
        stamp = plain[12 + at : 12 + at + 3]
        low, high = (abs_send_time(t) for t in window)
        assert low <= stamp <= high or high < low  # (a wrap inside the window: any)
        assert plain[: 12 + at] + plain[12 + at + 3 :] == packet[: 12 + at] + packet[12 + at + 3 :]


SCRIPT = [
    # (temporal, keyframe, picture-id step): L1T3 with a skipped frame and a 7-bit id
    (0, True, 1), (2, False, 1), (1, False, 1), (2, False, 1),
    (0, False, 1), (2, False, 2), (1, False, 1), (2, False, 1),
    (0, False, 1), (2, False, 1), (1, False, 1), (2, False, 1),
]  # fmt: skip


@pytest.mark.parametrize("abs_id", [None, 3], ids=["mid", "mid+abs-send-time"])
@pytest.mark.parametrize("sizes", [[1000, 1000, 300], [1100], [400, 1000, 700]], ids=str)
def test_fanout_sends_what_the_per_consumer_path_sends(
    abs_id: int | None, sizes: list[int]
) -> None:
    with subscribers(4, abs_id) as subs:
        subs[1].leg.temporal_target = subs[1].temporal_target = 1
        subs[2].leg.temporal_target = subs[2].temporal_target = 0
        subs[2].leg.temporal_current = subs[2].temporal_current = 0
        subs[3].stream.next_picture_id = subs[3].python.next_picture_id = 500  # after a switch
        legs = [s.leg for s in subs]
        picture_id, pts = 32_760, 1 << 33  # both wrap
        for repeat in range(3):
            for temporal, keyframe, step in SCRIPT:
                picture_id = (picture_id + step) & 0x7FFF
                pts += VIDEO
                items = vp8_frame(picture_id, temporal, sizes, short_id=repeat == 1)
                frame_id = vp8.picture_id(items[0])
                expected = [s.reference(items, pts, keyframe, frame_id, temporal) for s in subs]
                before = time.perf_counter()
                report = native_send.fanout(legs, items, pts, keyframe, frame_id, temporal, True)
                for index, status in report or []:
                    assert status == native_send.DEFERRED  # a route check: Python's
                    assert (subs[index].stream.frames + 1) % 32 == 0
                    deliver_in_python(subs[index], items, pts, keyframe, frame_id, temporal)
                window = (before, time.perf_counter())
                for sub, packets in zip(subs, expected, strict=True):
                    check_datagrams(sub, sub.receive(len(packets or [])), packets or [], window)
        for sub in subs:
            assert (sub.leg.frames_forwarded, sub.leg.frames_thinned) == (
                sub.forwarded,
                sub.thinned,
            )
            assert (sub.stream.packets_sent, sub.stream.octets) == (
                sub.python.packets_sent,
                sub.python.octets,
            )
            assert sub.stream.frames == sub.python.frames
            assert sub.stream.next_picture_id == sub.python.next_picture_id
            assert sub.stream.next_sequence_number == sub.python.next_sequence_number
            assert sub.stream.sr_rtp == sub.python.sr_rtp
            # NACKs are answered with what was sent (the rewritten picture id included).
            for back in range(130):
                seq = (sub.stream.next_sequence_number - back) & 0xFFFF
                assert sub.stream.resend(seq) == sub.python.resend(seq)
        assert subs[2].leg.frames_thinned > subs[1].leg.frames_thinned > 0


def test_per_consumer_c_send_matches_the_fanout() -> None:
    """`Stream.send` (the per-consumer C call) and `fanout` of one leg: the same stream."""
    with subscribers(2) as (one, two):
        for stream in (one.stream, two.stream):
            stream.frames = 0
        two_numbers = (two.stream.next_sequence_number,)
        assert two_numbers
        for n in range(40):
            items = [bytes([n]) * 900, bytes([n + 1]) * 500]
            one.stream.frames += 1
            assert one.stream.send(items, n * VIDEO, n == 0, True) == 0
            report = native_send.fanout([two.leg], items, n * VIDEO, n == 0, None, 0, True)
            if (n + 1) % 32 == 0:
                assert report == [(0, native_send.DEFERRED)]
                two.stream.frames += 1
                assert two.stream.send(items, n * VIDEO, n == 0, True) == 0
            else:
                assert report is None
        assert one.stream.frames == two.stream.frames == 40
        assert one.stream.packets_sent == two.stream.packets_sent == 80
        assert one.stream.octets == two.stream.octets == 40 * 1400


def test_every_32nd_frame_of_a_stream_is_left_to_python() -> None:
    with subscribers(2) as (one, two):
        two.stream.frames = 5
        for n in range(1, 65):
            expected = [
                (i, native_send.DEFERRED)
                for i, sub in enumerate((one, two))
                if (sub.stream.frames + 1) % 32 == 0
            ]
            report = native_send.fanout([one.leg, two.leg], [b"x" * 10], n, False, None, 0, True)
            assert (report or []) == expected, n
            for i, _status in expected:
                (one, two)[i].stream.frames += 1  # what send_frame would count
            one.receive(1 if not any(i == 0 for i, _ in expected) else 0)
            two.receive(1 if not any(i == 1 for i, _ in expected) else 0)


def test_with_route_check_every_leg_is_left_to_python_on_that_frame_only() -> None:
    with subscribers(2) as (one, two):
        two.stream.frames = 5  # the streams' own counts no longer matter
        for n in range(1, 65):
            check = n % 32 == 0
            report = native_send.fanout(
                [one.leg, two.leg], [b"x" * 10], n, False, None, 0, True, check
            )
            if check:
                assert report == [(0, native_send.DEFERRED), (1, native_send.DEFERRED)], n
                for sub in (one, two):
                    sub.stream.frames += 1  # what send_frame would count
            else:
                assert report is None, n
            one.receive(0 if check else 1)
            two.receive(0 if check else 1)
        with pytest.raises(TypeError, match="7 or 8 arguments"):
            native_send.fanout([], [b"x"], 0, False, None, 0, True, False, 9)  # type: ignore[call-arg]


def test_after_a_frame_left_to_python_the_next_ones_wait_for_it() -> None:
    """Frames after one the fan-out left to Python (not sent by it yet: the stream has
    not counted it) are left to Python too, so they cannot overtake it."""
    with subscribers(1) as (sub,):
        report = native_send.fanout([sub.leg], [b"x"], 0, True, None, 0, True, True)
        assert report == [(0, native_send.DEFERRED)]
        for n in range(1, 4):  # Python has not sent frame 0 yet
            report = native_send.fanout([sub.leg], [b"x"], n, False, None, 0, True, False)
            assert report == [(0, native_send.DEFERRED)], n
        sub.stream.frames += 1  # Python sent them (what send_frame counts)
        assert native_send.fanout([sub.leg], [b"x"], 4, False, None, 0, True, False) is None
        sub.receive(1)


def test_nack_history_drops_what_came_before_a_keyframe() -> None:
    with subscribers(1) as (sub,):
        native_send.fanout([sub.leg], [b"a", b"b"], 0, True, None, 0, True)
        first = sub.stream.next_sequence_number - 2
        assert sub.stream.resend(first + 1) == Resend(b"b", 1, sub.stream.sr_rtp, True)
        native_send.fanout([sub.leg], [b"c"], VIDEO, True, None, 0, True)
        assert sub.stream.resend(first) is None and sub.stream.resend(first + 2) is not None
        sub.receive(3)


def test_a_failing_stream_does_not_hold_up_the_others() -> None:
    with subscribers(3) as (one, two, three):
        broken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fd = broken.fileno()
        broken.close()
        address = native_send.sockaddr(*two.receiver.getsockname()[:2])
        two.stream.set_route(two, fd, address, *srtp_pointers(two.session))
        items = [b"y" * 1000, b"z" * 200]
        report = native_send.fanout([one.leg, two.leg, three.leg], items, 0, False, None, 0, True)
        assert report == [(1, errno.EBADF)]
        assert len(one.receive(2)) == len(three.receive(2)) == 2
        # Counted and numbered as the Python path does (the receiver NACKs the gap).
        assert two.stream.packets_sent == 2 and two.leg.frames_forwarded == 1
        two.stream.clear_route()
        assert not two.stream.routed
        assert native_send.fanout([two.leg], items, 1, False, None, 0, True) == [
            (0, native_send.DEFERRED)
        ]


def test_a_packet_too_long_for_one_stream_only_breaks_that_stream() -> None:
    with subscribers(2) as (one, two):
        longest = 2048 - 12 - 144
        items = [b"q" * (longest - len(one.extension))]
        two.stream.bind(two.ssrc, PT, 0x90, b"\xbe\xde\x00\x02" + bytes(8), -1)  # longer
        report = native_send.fanout([one.leg, two.leg], items, 0, False, None, 0, True)
        assert report == [(1, errno.EMSGSIZE)]
        assert len(one.receive(1)) == 1 and two.receive(0) == []


def test_gso_refused_by_the_kernel_is_retried_per_packet_and_reported() -> None:
    with subscribers(2) as (one, two):
        one.sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        items = [b"g" * 1000, b"h" * 1000, b"i" * 10]
        report = native_send.fanout([one.leg, two.leg], items, 0, False, None, 0, True)
        assert report == [(0, native_send.GSO_RETRIED)]
        for sub in (one, two):
            packets = [sub.inbound.unprotect(d) for d in sub.receive(3)]
            assert [p[12 + len(sub.extension) :] for p in packets] == items


def test_a_switch_of_source_keeps_timestamps_continuous() -> None:
    with subscribers(1) as (sub,):
        for pts in (0, VIDEO):
            native_send.fanout([sub.leg], [b"p"], pts, False, None, 0, True)
            sub.python.frames += 1
            sub.python.frame(pts, [b"p"])
        sub.stream.switch_source(9000)
        sub.python.switch_source(9000)
        native_send.fanout([sub.leg], [b"p"], 123_456, False, None, 0, True)
        assert (
            sub.stream.frame(123_456 + VIDEO, [b"p"])
            == ((sub.python.frame(123_456, [b"p"]), sub.python.frame(123_456 + VIDEO, [b"p"]))[1])
        )
        sub.receive(3)


@pytest.mark.parametrize("seed", range(20))
def test_stream_numbering_and_history_match_rtp_rewriter(seed: int) -> None:
    rng = random.Random(seed)
    numbers = (rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(32))
    c, python = native_send.Stream(VIDEO, *numbers), PythonStream(VIDEO, *numbers)
    pts = rng.getrandbits(40)
    for _ in range(300):
        action = rng.random()
        if action < 0.1:
            gap = rng.choice([0, 100, 10_000])
            c.switch_source(gap)
            python.switch_source(gap)
            pts = rng.getrandbits(33)
        elif action < 0.2:
            seq = (c.next_sequence_number - rng.randrange(200)) & 0xFFFF
            assert c.resend(seq) == python.resend(seq)
        elif action < 0.25:
            assert c.next_rtx_sequence_number() == python.next_rtx_sequence_number()
        else:
            pts += rng.choice([VIDEO, 2 * VIDEO, -VIDEO])
            items = [
                bytes([rng.getrandbits(8)]) * rng.randrange(1, 50)
                for _ in range(rng.randrange(1, 6))
            ]
            keyframe = rng.random() < 0.05
            assert c.frame(pts, items, keyframe) == python.frame(pts, items, keyframe)
    assert c.next_sequence_number == python.next_sequence_number


def test_stream_arguments() -> None:
    stream = native_send.Stream(VIDEO, 0x1_0005, 0, 1 << 32)
    assert stream.frame(7, [b"x"]) == (5, 7)  # masked like RtpRewriter
    with pytest.raises(ValueError):
        stream.bind(1, 128, 0x90, b"", -1)
    with pytest.raises(ValueError):
        stream.bind(1, 96, 0x90, b"\xbe\xde\x00\x01\x10\x00\x00\x00", 6)  # past the end
    with pytest.raises(RuntimeError, match="no route"):
        stream.send([b"x"], 0, False, True)
    leg = native_send.Leg()
    assert (leg.temporal_target, leg.temporal_current, leg.stream) == (3, 3, None)
    with pytest.raises(TypeError):
        leg.stream = object()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="not a Leg"):
        native_send.fanout([object()], [b"x"], 0, False, None, 0, True)
    with pytest.raises(ValueError, match="temporal"):
        native_send.fanout([leg], [b"x"], 0, False, None, 4, True)

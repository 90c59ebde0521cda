"""Counting streams from clear RTP headers: the C `HeaderCounter` (the load generator's
subscribers, where the extension is built) against the Python `PacketCount` it replaces,
on the same packets, and its socket drain over a real UDP socket pair."""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from scripts.load.counting import HeaderDrain, PacketCount
from sfu import native_receive

pytestmark = pytest.mark.skipif(not native_receive.AVAILABLE, reason="extension not built")


def rtp(ssrc: int, seq: int, marker: bool = False, payload_type: int = 96, size: int = 20) -> bytes:
    second = payload_type | (0x80 if marker else 0)
    return bytes([0x80, second]) + struct.pack("!HII", seq, 1234, ssrc) + bytes(size)


def fields(count: object) -> tuple[int, int, int, int]:
    return (
        count.packets,  # type: ignore[attr-defined]
        count.bytes,  # type: ignore[attr-defined]
        count.frames,  # type: ignore[attr-defined]
        count.expected,  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("audio", [False, True])
def test_the_c_counter_counts_as_the_python_one_through_wraps_reordering_and_loss(
    audio: bool,
) -> None:
    counter = native_receive.HeaderCounter()
    native = counter.watch(7, audio, True)
    python = PacketCount(audio)
    chooser = random.Random(5)
    seq = 65_000  # wraps after a few hundred packets
    for _ in range(3_000):
        step = chooser.choice([1, 1, 1, 1, 2, 3, -1, -5, -40_000])  # loss, reordering, a jump
        seq = (seq + step) & 0xFFFF
        marker = chooser.random() < 0.3
        size = chooser.randrange(12, 1200)
        datagram = rtp(7, seq, marker, size=size - 12)
        assert counter.feed(datagram) is True
        python.on_packet(seq, marker, time.monotonic(), len(datagram))
    assert fields(native) == fields(python)
    assert native.expected > 3_000  # the sequence numbers wrapped and ran on
    assert native.first_frame_at is not None and native.last_frame_at is not None
    assert native.first_frame_at <= native.last_frame_at <= time.monotonic()


def test_only_rtp_of_watched_ssrcs_is_counted_and_only_consumed_ones_are_kept() -> None:
    counter = native_receive.HeaderCounter()
    counted = counter.watch(1, False, True)
    received_whole = counter.watch(2, False, False)
    assert counter.watched == 2
    with pytest.raises(ValueError, match="already watched"):
        counter.watch(1, True, True)
    assert counter.feed(rtp(1, 10, marker=True)) is True
    assert counter.feed(rtp(2, 10)) is False  # counted, then goes on to be received
    assert counter.feed(rtp(3, 10)) is False  # an SSRC nobody watches
    rtcp = bytes([0x80, 200]) + bytes(26)
    assert counter.feed(rtcp) is False
    assert counter.feed(b"\x00\x01 STUN") is False
    assert counter.feed(rtp(1, 11)[:11]) is False  # shorter than an RTP header
    assert counted.packets == received_whole.packets == 1
    assert counted.frames == 1 and received_whole.frames == 0  # video frames end on a marker
    assert counter.forget(1) is True and counter.forget(1) is False
    assert counter.feed(rtp(1, 12)) is False
    assert counted.packets == 1  # what it counted before it was forgotten stays
    many = [counter.watch(100 + i, True, True) for i in range(200)]  # the table grows
    for i in range(0, 200, 3):
        assert counter.forget(100 + i)
    for i, count in enumerate(many):
        assert counter.feed(rtp(100 + i, 1)) is (i % 3 != 0)
        assert count.packets == (0 if i % 3 == 0 else 1)
    assert counter.watched == 1 + 200 - 67


def test_a_drain_counts_in_place_and_passes_the_rest_on_in_order_with_their_address() -> None:
    counter = native_receive.HeaderCounter()
    audio = counter.watch(9, True, True)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    passed: list[tuple[bytes, object]] = []
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        sender.bind(("127.0.0.1", 0))
        datagrams = [rtp(9, i) for i in range(150)]  # more than one recvmmsg batch
        datagrams[3] = rtp(10, 0)
        datagrams[70] = b"\x16\xfe\xfd a DTLS record"
        for datagram in datagrams:
            sender.sendto(datagram, receiver.getsockname())
        HeaderDrain(counter)(receiver, lambda data, address: passed.append((data, address)))
        sender_name = sender.getsockname()
    finally:
        receiver.close()
        sender.close()
    assert passed == [(datagrams[3], sender_name), (datagrams[70], sender_name)]
    assert audio.packets == audio.frames == 148 and audio.expected == 150
    assert counter.datagrams == 150 and counter.batches >= 3

"""What a publish connection may send (`sfu/_receive_c/guard.c`): each track's caps, the
SSRCs Python refused, and the budgets of what only Python can handle (unknown SSRCs,
RTCP, STUN/DTLS). Every refused packet is dropped before anything reads it and counted
per connection (`Receiver.refused`) and per process (`refused_totals`).

The buckets refill with the monotonic clock while a test runs, so each count allows
for what the measured elapsed time could have refilled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sfu import native_receive, refused_packet_totals
from tests.sfu.receive_reference import (
    OPUS_SPEC,
    VP8_SPEC,
    Packet,
    configure,
    new_receiver,
    require_native_receive,
)
from tests.sfu.test_native_receive_io import RTCP_RR, STUN, session_pair

UNKNOWN_BURST, UNKNOWN_PER_SECOND = 64, 32
RTCP_BURST, RTCP_PER_SECOND = 400, 200
CONTROL_BURST, CONTROL_PER_SECOND = 100, 50


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_native_receive()


class Clock:
    """Seconds since it started, to bound what a bucket could have refilled."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def refill(self, rate: float) -> int:
        return math.ceil((time.monotonic() - self._start) * rate)


def vp8_packets(count: int, size: int = 100, first_seq: int = 1) -> Iterator[bytes]:
    """One-packet VP8 frames (a keyframe first) of `size` payload bytes."""
    for index in range(count):
        key = index == 0
        descriptor = b"\x90\x80" + bytes(((first_seq + index) & 0x7F,))
        header = b"\x00" if key else b"\x01"  # VP8 payload header: P bit clear = key
        payload = descriptor + header + bytes(size - len(descriptor) - 1)
        yield bytes(
            Packet(
                VP8_SPEC.ssrc, VP8_SPEC.payload_type, first_seq + index, 3000 * index, True, payload
            )
        )


def opus_packets(count: int, size: int = 100, first_seq: int = 1) -> Iterator[bytes]:
    for index in range(count):
        seq = first_seq + index
        yield bytes(
            Packet(OPUS_SPEC.ssrc, OPUS_SPEC.payload_type, seq, 960 * seq, False, bytes(size))
        )


def counts_of(receiver: Any, ssrc: int) -> dict[str, int]:
    counts: dict[str, int] | None = receiver.counts(ssrc)
    assert counts is not None
    return counts


# ------------------------------------------------------------------ track caps


def test_a_video_track_over_its_packet_rate_is_cut_at_the_bucket() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC])
    receiver.cap(0, 0, 0, 5)  # 5 video packets a second, a bucket of 5
    before = refused_packet_totals()["track_cap"]
    clock = Clock()
    for packet in vp8_packets(40):
        receiver.feed_plain(packet)
    admitted = counts_of(receiver, VP8_SPEC.ssrc)["packets"]
    assert 5 <= admitted <= 5 + clock.refill(5)
    counts = counts_of(receiver, VP8_SPEC.ssrc)
    assert counts["over_cap"] == 40 - admitted
    assert receiver.refused["track_cap"] == 40 - admitted
    assert refused_packet_totals()["track_cap"] - before == 40 - admitted
    # A refused packet is dropped before the receive statistics: it was never received.
    statistics = receiver.statistics(VP8_SPEC.ssrc)
    assert statistics is not None and statistics[0] == admitted


def test_a_packet_over_the_cap_is_not_nacked_but_a_real_loss_still_is() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC])
    receiver.cap(0, 0, 0, 3)
    packets = list(vp8_packets(12))
    nacks = [
        event
        for packet in packets[:6]  # 3 admitted, then refused: not lost, nothing to ask for
        for event in receiver.feed_plain(packet)
        if event[0] == native_receive.NACK
    ]
    assert counts_of(receiver, VP8_SPEC.ssrc)["over_cap"] == 3
    assert nacks == []
    receiver.cap(0, 0, 0, 0)  # uncapped again
    events = [e for packet in packets[7:] for e in receiver.feed_plain(packet)]  # 7 is lost
    (nack,) = [e for e in events if e[0] == native_receive.NACK]
    assert list(nack[3]) == [7]  # seq 7 (index 6) was lost; the refused 4-6 are not asked for
    assert counts_of(receiver, VP8_SPEC.ssrc)["nacked"] == 1


def test_an_audio_track_over_its_bit_rate_is_cut_and_refills() -> None:
    receiver = new_receiver()
    configure(receiver, [OPUS_SPEC])
    # 8,000 bits: eight 112-byte packets (896 bits each) fit, the ninth does not.
    receiver.cap(8000, 0, 0, 0)
    clock = Clock()
    frames = sum(
        event[0] == native_receive.FRAME
        for packet in opus_packets(20)
        for event in receiver.feed_plain(packet)
    )
    allowed = 8 + clock.refill(8000) // 896 + 1
    assert 8 <= frames <= allowed
    assert counts_of(receiver, OPUS_SPEC.ssrc)["over_cap"] == 20 - frames
    time.sleep(0.25)  # 2,000 bits come back: two more packets
    later = [
        event for packet in opus_packets(3, first_seq=100) for event in receiver.feed_plain(packet)
    ]
    assert len(later) >= 2


def test_retransmissions_are_charged_to_their_media_track() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC])
    assert VP8_SPEC.rtx_ssrc is not None and VP8_SPEC.rtx_payload_type is not None
    receiver.cap(0, 0, 0, 3)
    clock = Clock()
    for packet in vp8_packets(3):
        receiver.feed_plain(packet)
    for seq in range(10):
        rtx = Packet(
            VP8_SPEC.rtx_ssrc, VP8_SPEC.rtx_payload_type, seq, 0, True, bytes((0, 2)) + b"x" * 20
        )
        receiver.feed_plain(bytes(rtx))
    over = counts_of(receiver, VP8_SPEC.ssrc)["over_cap"]
    assert 10 - clock.refill(3) <= over <= 10
    assert receiver.refused["track_cap"] == over


def test_uncapped_tracks_and_bad_caps() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC, OPUS_SPEC])
    receiver.cap(0, 0, 0, 0)
    for packet in vp8_packets(300):
        receiver.feed_plain(packet)
    assert counts_of(receiver, VP8_SPEC.ssrc) | {"over_cap": 0} == counts_of(
        receiver, VP8_SPEC.ssrc
    )
    assert counts_of(receiver, VP8_SPEC.ssrc)["packets"] == 300
    for bad in (-1.0, float("nan"), 1e13):
        with pytest.raises(ValueError, match="caps"):
            receiver.cap(bad, 0, 0, 0)


def test_caps_apply_to_streams_added_before_and_after() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC])
    receiver.cap(0, 2, 0, 2)
    configure(receiver, [OPUS_SPEC])
    for packet in opus_packets(30):
        receiver.feed_plain(packet)
    for packet in vp8_packets(30):
        receiver.feed_plain(packet)
    assert counts_of(receiver, OPUS_SPEC.ssrc)["over_cap"] >= 20
    assert counts_of(receiver, VP8_SPEC.ssrc)["over_cap"] >= 20


# ------------------------------------------------------------------ unknown SSRCs


def unknown(ssrc: int, seq: int = 1) -> bytes:
    return bytes(Packet(ssrc, VP8_SPEC.payload_type, seq, 0, True, b"\x90\x80\x01\x00x"))


def test_unknown_ssrcs_reach_python_within_a_budget() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC])
    clock = Clock()
    passed = sum(len(receiver.feed_plain(unknown(0x5000_0000 + index))) for index in range(300))
    assert UNKNOWN_BURST <= passed <= UNKNOWN_BURST + clock.refill(UNKNOWN_PER_SECOND)
    assert receiver.refused["unknown_flood"] == 300 - passed
    # The known stream is not charged by any of it.
    for packet in vp8_packets(5):
        receiver.feed_plain(packet)
    assert counts_of(receiver, VP8_SPEC.ssrc)["packets"] == 5


def test_a_refused_ssrc_is_dropped_unread_for_a_second() -> None:
    receiver = new_receiver()
    before = refused_packet_totals()
    assert [e[0] for e in receiver.feed_plain(unknown(0x7777))] == [native_receive.UNKNOWN]
    receiver.refuse(0x7777, "unnegotiated_mid")
    for seq in range(2, 12):
        assert receiver.feed_plain(unknown(0x7777, seq)) == []
    assert receiver.refused["unnegotiated_mid"] == 11
    after = refused_packet_totals()
    assert after["unnegotiated_mid"] - before["unnegotiated_mid"] == 11
    receiver.refuse(0x8888, "unknown_ssrc")
    receiver.refuse(0x9999, "unknown_codec")
    assert receiver.refused["unknown_ssrc"] == 1 and receiver.refused["unknown_codec"] == 1
    with pytest.raises(ValueError, match="not a reason"):
        receiver.refuse(0x7777, "track_cap")
    time.sleep(1.05)
    assert [e[0] for e in receiver.feed_plain(unknown(0x7777, 20))] == [native_receive.UNKNOWN]


def test_more_refused_ssrcs_than_remembered_come_back_within_the_budget() -> None:
    receiver = new_receiver()
    for ssrc in range(1, 40):  # the table keeps the last 16
        receiver.refuse(ssrc, "unknown_ssrc")
    assert receiver.feed_plain(unknown(39)) == []
    assert [e[0] for e in receiver.feed_plain(unknown(1))] == [native_receive.UNKNOWN]


# ------------------------------------------------------------------ control budgets


def test_rtcp_and_stun_beyond_their_budgets_are_dropped() -> None:
    tx, rx = session_pair()
    receiver = new_receiver(session=rx)
    srtcp = tx.protect_rtcp(RTCP_RR)
    clock = Clock()
    rtcp = sum(len(receiver.feed(srtcp)) for _ in range(600))
    assert RTCP_BURST <= rtcp <= RTCP_BURST + clock.refill(RTCP_PER_SECOND)
    assert receiver.refused["rtcp_flood"] == 600 - rtcp
    clock = Clock()
    stun = sum(len(receiver.feed(STUN, ("192.0.2.1", 9))) for _ in range(300))
    assert CONTROL_BURST <= stun <= CONTROL_BURST + clock.refill(CONTROL_PER_SECOND)
    assert receiver.refused["control_flood"] == 300 - stun
    # Media is not charged by either budget.
    configure(receiver, [OPUS_SPEC])
    for packet in opus_packets(5):
        assert receiver.feed(tx.protect(packet))

"""The downlink estimate: its rules as pure logic, the RTCP it reads, and live, a real
aiortc subscriber's REMB and receiver-report loss reaching it."""

from __future__ import annotations

from aiortc.rtp import RtcpPsfbPacket, RtcpReceiverInfo, RtcpRrPacket, pack_remb_fci

from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.client import MediaClient
from sfu.bandwidth import HOLD, LOSS_SPAN, DownlinkEstimate, RecentRates
from sfu.direct_send import abs_send_time, header_extensions
from sfu.rtcp import read_feedback, remb_bitrate


def test_nothing_limits_a_link_that_shows_no_congestion() -> None:
    estimate = DownlinkEstimate()
    estimate.on_loss(0.0, 2e6, 1.0)
    estimate.on_remb(2.5e6, 2e6, 1.0)  # above what is sent: says nothing about a limit
    assert estimate.limit is None and estimate.remb == 2.5e6


def test_loss_limits_and_the_congested_rate_is_tried_again_after_the_hold() -> None:
    estimate = DownlinkEstimate()
    estimate.on_loss(0.2, 1e6, 0.0)
    assert estimate.limit == 900_000  # sent * (1 - loss / 2)
    estimate.on_loss(0.05, 1e6, 1.0)  # between 2 and 10 %: holds
    assert estimate.limit == 900_000
    for second in range(2, int(HOLD)):
        estimate.on_loss(0.0, 300_000, float(second))
    assert estimate.limit == 900_000  # 90 % of the congested rate during the hold
    estimate.on_loss(0.0, 300_000, HOLD + 1)
    assert estimate.limit == 1e6  # the congested rate again: it is tried once more
    estimate.on_loss(0.0, 300_000, HOLD + 1.5)
    assert estimate.limit == 1e6 * 1.04


def test_a_remb_cut_below_the_sent_rate_limits_a_lossy_link() -> None:
    estimate = DownlinkEstimate()
    # A first REMB is what the receiver measures coming in (aiortc's: video payload
    # only, under what is sent with audio and headers): no limit.
    estimate.on_remb(780_000, 1_000_000, 0.0)
    assert estimate.limit is None
    estimate.on_remb(500_000, 800_000, 1.0)  # a cut, but no loss: a busy machine's delay
    assert estimate.limit is None
    estimate.on_loss(0.03, 800_000, 1.2)  # some loss, under the 10 % that limits alone
    assert estimate.limit is None
    estimate.on_remb(450_000, 800_000, 1.5)  # the receiver's overuse cut on a lossy link
    assert estimate.limit == 450_000
    assert estimate.last_congestion == ("remb", 450_000, 800_000)
    estimate.on_loss(0.5, 400_000, 2.0)
    assert estimate.limit == 300_000


def test_a_remb_cut_with_nacks_limits_before_any_receiver_report_says_loss() -> None:
    estimate = DownlinkEstimate()
    estimate.on_remb(780_000, 1_000_000, 0.0)
    estimate.on_loss(0.0, 1_000_000, 0.5)  # the report from before the link filled up
    estimate.on_remb(500_000, 1_000_000, 1.0, nacked=True)  # cut, and packets NACKed
    assert estimate.limit == 500_000


def test_a_remb_not_yet_caught_up_with_a_layer_up_does_not_limit() -> None:
    estimate = DownlinkEstimate()
    estimate.on_loss(0.03, 280_000, 0.0)  # a little loss: cuts would count
    estimate.on_remb(356_000, 280_000, 0.0)  # on the low layer
    estimate.on_remb(367_000, 950_000, 1.0)  # a layer up: the estimate grows from 356k
    estimate.on_remb(350_000, 950_000, 1.5)  # within 5 % of the one before: no cut
    assert estimate.limit is None and estimate.remb == 350_000
    estimate.on_remb(320_000, 950_000, 2.0)
    assert estimate.limit == 320_000


def test_a_remb_cut_just_after_the_server_stalled_does_not_limit() -> None:
    estimate = DownlinkEstimate()
    estimate.on_remb(800_000, 900_000, 0.0)
    estimate.on_remb(114_000, 300_000, 1.0, after_stall=True)  # a burst after a stall
    assert estimate.limit is None and estimate.remb == 114_000


def test_recent_rates_keep_the_peak_of_the_span() -> None:
    rates = RecentRates()
    assert rates.peak(0.0) == 0.0
    rates.add(950_000, 0.5)  # the high layer
    rates.add(280_000, 1.0)  # then the low one: loss reported now happened before
    assert rates.peak(1.0) == 950_000
    assert rates.peak(0.5 + LOSS_SPAN + 0.1) == 280_000
    rates.add(300_000, 3.0)
    assert rates.peak(3.0) == 300_000


def test_feedback_compounds_with_rr_and_remb_are_read() -> None:
    block = RtcpReceiverInfo(
        ssrc=7, fraction_lost=64, packets_lost=3, highest_sequence=10, jitter=90, lsr=0, dlsr=0
    )
    rr = bytes(RtcpRrPacket(ssrc=1, reports=[block]))
    remb = bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=pack_remb_fci(1_234_567, [7])))
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=7))
    feedback = read_feedback(rr + remb)
    assert feedback is not None and feedback.remb is not None
    assert abs(feedback.remb - 1_234_567) / 1_234_567 < 0.001  # 18-bit mantissa
    assert [(b.ssrc, b.fraction_lost) for b in feedback.blocks] == [(7, 0.25)]
    assert read_feedback(rr + pli) is None  # for aiortc
    assert remb_bitrate(b"XXXX\x01\x00\x00\x00") is None


def test_abs_send_time_is_written_after_the_mid() -> None:
    block, offset = header_extensions(1, "12", 3)
    assert block[:4] == b"\xbe\xde\x00\x02" and block[4:7] == b"\x1112"
    assert offset == 8 and block[7] == 0x32
    assert abs_send_time(1.5) == (3 << 17).to_bytes(3, "big")
    assert header_extensions(None, "", 2) == (b"\xbe\xde\x00\x01\x22\x00\x00\x00", 5)


async def test_an_aiortc_subscriber_reports_remb_and_loss(room: Room) -> None:
    await room.join("teacher")
    lossy = MediaClient(room.config, loss_every=4)
    room.clients["lossy"] = lossy
    participant = room.add_participant("lossy")
    await wait_for(lambda: participant.subscription.downlink() is not None, timeout=10)
    estimate = participant.subscription.downlink()
    assert estimate is not None
    await wait_for(lambda: estimate.remb is not None, timeout=10, what="a REMB")
    # A quarter of its packets lost (audio is not repaired): its reports limit it.
    await wait_for(lambda: participant.downlink_limit is not None, timeout=15, what="a limit")
    assert estimate.last_loss is not None
    limit = participant.downlink_limit
    assert limit is not None and limit < 2_000_000
    stats = room.router.stats()
    lossy_stats = next(p for p in stats.participants if p.participant_id == "lossy")
    assert lossy_stats.downlink_limit == limit and lossy_stats.downlink_remb is not None

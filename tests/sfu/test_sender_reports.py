"""RTCP on the direct send path: sender reports in compound packets per connection on
one process-wide clock, parsed by real aiortc subscribers; their receiver reports read
without aiortc, giving each consumer its round trip time, loss and jitter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSdesPacket,
    RtcpSourceInfo,
    RtcpSrPacket,
)

from scripts.support.loopback import Room, wait_for
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.rtcp import (
    SENDERS_PER_COMPOUND,
    ReportBlock,
    SenderReport,
    compound_packets,
    last_sr,
    ntp_timestamp,
    receiver_report_blocks,
)
from sfu.sender_reports import AFTER_STALL, STALL, ReportClock, SenderReports


def test_compound_packets_parse_back_with_aiortc() -> None:
    reports = [
        SenderReport(
            ssrc=1000 + i,
            cname=f"cname-{i}",
            ntp=ntp_timestamp(1700000000.25 + i),
            rtp_timestamp=(1 << 32) + 90 * i,
            packets=10 * i,
            octets=1000 * i,
        )
        for i in range(SENDERS_PER_COMPOUND + 3)
    ]
    compounds = compound_packets(reports)
    assert len(compounds) == 2
    assert max(map(len, compounds)) < 1000  # well under a path MTU, SRTCP trailer included
    parsed = [packet for compound in compounds for packet in RtcpPacket.parse(compound)]
    srs = [p for p in parsed if isinstance(p, RtcpSrPacket)]
    sdes = [p for p in parsed if isinstance(p, RtcpSdesPacket)]
    assert [sr.ssrc for sr in srs] == [r.ssrc for r in reports]
    assert isinstance(parsed[0], RtcpSrPacket) and isinstance(parsed[-1], RtcpSdesPacket)
    for sr, report in zip(srs, reports, strict=True):
        assert sr.sender_info.ntp_timestamp == report.ntp
        assert sr.sender_info.rtp_timestamp == report.rtp_timestamp & 0xFFFFFFFF
        assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (
            report.packets,
            report.octets,
        )
    chunks = [(c.ssrc, c.items) for packet in sdes for c in packet.chunks]
    assert chunks == [(r.ssrc, [(1, r.cname.encode())]) for r in reports]
    assert compound_packets([]) == []


def test_ntp_timestamps() -> None:
    assert ntp_timestamp(0.0) == 2208988800 << 32
    assert ntp_timestamp(0.5) == (2208988800 << 32) | (1 << 31)
    assert last_sr(0x1122334455667788) == 0x33445566


async def _poll(read: Callable[[], Awaitable[list[Any]]], count: int, timeout: float) -> list[Any]:
    """Call `read` every 100 ms until it returns `count` items or `timeout` passes."""
    deadline = time.monotonic() + timeout
    found = await read()
    while len(found) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        found = await read()
    return found


async def test_a_connections_streams_share_one_timer_and_subscribers_get_every_report() -> None:
    room = Room()
    try:
        server_pc, client_pc = await room.teacher_and_viewer()
        transceivers = server_pc.getTransceivers()
        reports = SenderReports.of(transceivers[0].sender.transport)
        assert reports.senders == 2  # the teacher's audio and video
        # aiortc's per-sender RTCP task is our idle stand-in: no wake-ups per sender.
        assert all(adapter_testing.runs_idle_rtcp(t.sender) for t in transceivers)
        # Both streams' reports go out in one compound packet.
        before = reports.compounds_sent
        assert reports.send_now() == 1
        assert reports.compounds_sent == before + 1

        # The subscriber (aiortc) parsed a sender report for each stream.
        async def remote_outbound() -> list[Any]:
            found = []
            for transceiver in client_pc.getTransceivers():
                stats = await transceiver.receiver.getStats()
                found += [
                    s for s in stats.values() if s.type == "remote-outbound-rtp" and s.packetsSent
                ]
            return found

        senders = {adapter_testing.sender_ssrc(t.sender) for t in transceivers}
        found = await _poll(remote_outbound, 2, timeout=5)
        assert sorted(s.ssrc for s in found) == sorted(senders)

        # Its receiver reports about them are read without aiortc, and refer back to
        # our sender reports: the round trip time is measured.
        async def measured() -> list[Any]:
            consumers = room.participants["student"].stats().consumers
            return [c for c in consumers if c.round_trip_time is not None]

        linked = await _poll(measured, 2, timeout=6)
        assert len(linked) == 2 and reports.receiver_reports > 0
        for consumer in linked:
            assert consumer.round_trip_time is not None and 0 <= consumer.round_trip_time < 0.5
            assert consumer.fraction_lost == 0 and consumer.packets_lost == 0  # loopback
            assert consumer.jitter is not None and 0 <= consumer.jitter < 0.1
    finally:
        await room.close()
    assert reports.senders == 0  # the closed senders left the connection's timer


async def test_every_connection_reports_about_once_a_second_on_one_process_wide_clock() -> None:
    room = Room()
    try:
        await room.join("teacher")
        for student in ("s1", "s2"):
            await room.join(student, video=False, audio=False)
        await wait_for(
            lambda: room.decoded("s1", "teacher") >= 5 and room.decoded("s2", "teacher") >= 5,
            timeout=10,
        )
        connections = []
        for student in ("s1", "s2"):
            pc = room.participants[student].subscribe_pc
            assert pc is not None
            connections.append(SenderReports.of(pc.getTransceivers()[0].sender.transport))
        clock = ReportClock.of(asyncio.get_running_loop())
        assert all(reports in clock for reports in connections)
        ticks, sent = clock.ticks, [r.compounds_sent for r in connections]
        await asyncio.sleep(3.2)
        # One timer for both: a tick every 0.5 s (at most 7 in 3.2 s; fewer when the loop
        # runs late on a busy machine), each connection due every 0.5-1.5 s.
        assert 1 <= clock.ticks - ticks <= 7
        for reports, before in zip(connections, sent, strict=True):
            assert 1 <= reports.compounds_sent - before <= 6
    finally:
        await room.close()
    assert not any(reports in clock for reports in connections)


async def test_the_clock_notices_when_the_event_loop_was_held_up() -> None:
    room = Room()
    try:
        await room.join("teacher")
        await room.join("s1", video=False, audio=False)
        await wait_for(lambda: room.decoded("s1", "teacher") >= 5, timeout=10)
        clock = ReportClock.of(asyncio.get_running_loop())
        time.sleep(2 * STALL + 0.5)  # noqa: ASYNC251 (the point: a stall of this process)
        ticks = clock.ticks
        await wait_for(lambda: clock.ticks > ticks, timeout=5)
        assert clock.stalled_within(AFTER_STALL, time.monotonic())
    finally:
        await room.close()


def test_receiver_reports_are_read_from_rr_and_sdes_compounds_only() -> None:
    block = RtcpReceiverInfo(
        ssrc=1234,
        fraction_lost=64,
        packets_lost=-3,
        highest_sequence=70000,
        jitter=90,
        lsr=0x33445566,
        dlsr=65536,
    )
    other = RtcpReceiverInfo(
        ssrc=99, fraction_lost=0, packets_lost=12, highest_sequence=5, jitter=0, lsr=0, dlsr=0
    )
    rr = bytes(RtcpRrPacket(ssrc=42, reports=[block, other]))
    sdes = bytes(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=42, items=[(1, b"cname")])]))
    blocks = receiver_report_blocks(rr + sdes)
    assert blocks == [
        ReportBlock(1234, 0.25, -3, 70000, 90, 0x33445566, 65536),
        ReportBlock(99, 0.0, 12, 5, 0, 0, 0),
    ]
    assert receiver_report_blocks(bytes(RtcpRrPacket(ssrc=42, reports=[]))) == []
    # Anything else in the compound is aiortc's business.
    pli = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=42, media_ssrc=1234))
    assert receiver_report_blocks(rr + pli) is None
    sr = compound_packets([SenderReport(7, "c", ntp_timestamp(0.0), 0, 1, 1)])[0]
    assert receiver_report_blocks(sr) is None
    assert receiver_report_blocks(rr[:-4]) is None  # truncated
    assert receiver_report_blocks(b"\x00" + rr[1:]) is None  # not version 2

"""Sender reports on the direct send path: one timer and compound packet per connection,
parsed by real aiortc subscribers, and the round trip time still measured."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSrPacket

from sfu import aiortc_adapter
from sfu.rtcp import (
    SENDERS_PER_COMPOUND,
    SenderReport,
    compound_packets,
    last_sr,
    ntp_timestamp,
)
from tests.sfu.harness import Room, wait_for


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
        await room.join("teacher")
        await room.join("student", video=False, audio=False)
        await wait_for(lambda: room.decoded("student", "teacher") >= 10, timeout=10)
        server_pc = room.participants["student"].subscribe_pc
        client_pc = room.clients["student"].subscribe_pc
        assert server_pc is not None and client_pc is not None
        transceivers = server_pc.getTransceivers()
        reports = aiortc_adapter.SenderReports.of(transceivers[0].sender.transport)
        assert reports.senders == 2  # the teacher's audio and video
        # aiortc's per-sender RTCP task is our idle stand-in: no wake-ups per sender.
        for transceiver in transceivers:
            task = transceiver.sender._RTCRtpSender__rtcp_task  # type: ignore[attr-defined]
            code = task.get_coro().cr_code
            assert code is aiortc_adapter.DirectRtpSender._rtcp_until_stopped.__code__
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

        senders = {t.sender._ssrc for t in transceivers}
        found = await _poll(remote_outbound, 2, timeout=5)
        assert sorted(s.ssrc for s in found) == sorted(senders)

        # Its receiver reports refer back to them: the server still measures the RTT.
        async def round_trip_times() -> list[float]:
            values = []
            for transceiver in transceivers:
                stats = await transceiver.sender.getStats()
                values += [
                    s.roundTripTime
                    for s in stats.values()
                    if s.type == "remote-inbound-rtp" and s.roundTripTime is not None
                ]
            return values

        rtts = await _poll(round_trip_times, 2, timeout=6)
        assert len(rtts) == 2 and all(0 <= rtt < 0.5 for rtt in rtts)
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
            connections.append(
                aiortc_adapter.SenderReports.of(pc.getTransceivers()[0].sender.transport)
            )
        clock = aiortc_adapter._ReportClock.of(asyncio.get_running_loop())
        assert all(reports in clock._due for reports in connections)
        ticks, sent = clock.ticks, [r.compounds_sent for r in connections]
        await asyncio.sleep(3.2)
        # One timer for both: a tick every 0.5 s; each connection due every 0.5-1.5 s.
        assert 5 <= clock.ticks - ticks <= 7
        for reports, before in zip(connections, sent, strict=True):
            assert 2 <= reports.compounds_sent - before <= 6
    finally:
        await room.close()
    assert not any(reports in clock._due for reports in connections)

"""A subscriber's control traffic (RTCP, ICE consent) on a connected subscribe connection
is read when media arrives instead of waking the event loop per datagram, and wakes it
again as soon as no media flows; real aiortc peers over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import replace

import av
from aiortc import RTCPeerConnection

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.media import EncodedVideoTrack
from sfu import aiortc_adapter
from sfu.sender_reports import SenderReports


class PausableVideoTrack(EncodedVideoTrack):
    """The clip, in real time, with a gate: while closed no frame is sent."""

    def __init__(self, room: Room) -> None:
        super().__init__(room.clip)
        self.gate = asyncio.Event()
        self.gate.set()

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if not self.gate.is_set():
            paused = time.monotonic()
            await self.gate.wait()
            if self._start is not None:  # resume at the real-time pace, no burst
                self._start += time.monotonic() - paused
        return await super().recv()


def _reads() -> aiortc_adapter.ControlReads:
    return aiortc_adapter.ControlReads.of(asyncio.get_running_loop())


def _subscriber_receivers(pc: RTCPeerConnection) -> list[tuple[int, object]]:
    """(remote SSRC, receiver) of the client's video receivers that got media."""
    found: list[tuple[int, object]] = []
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind == "video":
            found += [(s.source, receiver) for s in receiver.getSynchronizationSources()]
    return found


async def test_a_subscribers_rtcp_is_read_at_the_next_media_packet() -> None:
    room = Room()
    reads = _reads()
    try:
        _, client_pc = await room.teacher_and_viewer()
        await wait_for(lambda: reads.deferred >= 1, what="the subscribe socket deferred")
        # Media flows: the subscriber's datagrams no longer wake the loop.
        await wait_for(lambda: not reads.waking, what="media-driven polling")
        polls = reads.polls
        # Its receiver reports still arrive: round trip times are measured.
        await wait_for(
            lambda: all(
                c.round_trip_time is not None
                for c in room.participants["student"].stats().consumers
            ),
            timeout=8,
            what="round trip times from receiver reports",
        )
        assert reads.polls > polls
        # A PLI from the subscriber reaches the consumer.
        producer = next(p for p in room.router.producers.values() if p.kind == "video")
        consumer = next(iter(producer.consumers.values()))
        before = consumer.keyframe_requests
        receivers = _subscriber_receivers(client_pc)
        assert receivers
        ssrc, receiver = receivers[0]
        await aiortc_adapter.send_pli(receiver, ssrc)  # type: ignore[arg-type]
        await wait_for(lambda: consumer.keyframe_requests > before, what="the PLI at the server")
        assert not reads.waking
        assert room.decoded("student", "teacher") > 10
    finally:
        await room.close()
    await wait_for(lambda: reads.deferred == 0, what="the deferred sockets released")
    assert not reads.waking


async def test_without_media_control_datagrams_wake_the_loop_again() -> None:
    room = Room()
    reads = _reads()
    track = PausableVideoTrack(room)
    try:
        await room.join("teacher", video=False, audio=False, video_track=track)
        await room.join("student", video=False, audio=False)
        await wait_for(lambda: room.decoded("student", "teacher") >= 10, timeout=10)
        server_pc = room.participants["student"].subscribe_pc
        assert server_pc is not None
        reports = SenderReports.of(server_pc.getTransceivers()[0].sender.transport)
        await wait_for(lambda: reads.deferred >= 1 and not reads.waking, what="deferred reads")
        track.gate.clear()
        # Within the watchdog's period (0.5 s) after the last media packet.
        await wait_for(lambda: reads.waking, timeout=2, what="control datagrams waking the loop")
        # The subscriber's receiver reports (about one a second) are read as they come.
        before = reports.receiver_reports
        await wait_for(
            lambda: reports.receiver_reports > before, timeout=4, what="a receiver report"
        )
        assert reads.waking
        track.gate.set()
        await wait_for(lambda: not reads.waking, timeout=2, what="media-driven polling again")
        decoded = room.decoded("student", "teacher")
        await wait_for(lambda: room.decoded("student", "teacher") > decoded + 5, timeout=5)
    finally:
        track.gate.set()
        await room.close()


async def test_leaving_releases_the_deferred_descriptors() -> None:
    room = Room()
    reads = _reads()
    try:
        await room.join("teacher")
        await room.join("student", video=False, audio=False)
        await room.join("observer", video=False, audio=False)
        await wait_for(
            lambda: (
                room.decoded("student", "teacher") >= 5 and room.decoded("observer", "teacher") >= 5
            ),
            timeout=10,
        )
        await wait_for(lambda: reads.deferred >= 2, what="both subscribe sockets deferred")
        watched = {fd: os.fstat(fd).st_ino for fd in reads.descriptors}
        count = reads.deferred
        await room.leave("student")
        await wait_for(lambda: reads.deferred < count, what="the leaver's socket released")
        assert reads.deferred >= 1  # the observer's stays
        decoded = room.decoded("observer", "teacher")
        await wait_for(lambda: room.decoded("observer", "teacher") > decoded + 5, timeout=5)
    finally:
        await room.close()
    await wait_for(lambda: reads.deferred == 0, what="every deferred socket released")
    for fd, inode in watched.items():
        with contextlib.suppress(OSError):  # closed, or reused by another file
            assert os.fstat(fd).st_ino != inode, f"descriptor {fd} still open"


async def test_only_a_selector_loops_udp_transports_are_deferred() -> None:
    reads = _reads()
    loop = asyncio.get_running_loop()
    assert not reads.defer(None)
    assert not reads.defer(object())
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        assert reads.defer(transport)
        assert not reads.defer(transport)  # already
        assert reads.deferred == 1
    finally:
        transport.close()
    assert reads.deferred == 0
    assert not reads.defer(transport)  # closing


async def test_the_setting_turns_it_off() -> None:
    room = Room(replace(LOOPBACK, coalesce_control_reads=False))
    reads = _reads()
    try:
        await room.teacher_and_viewer(frames=5)
        assert reads.deferred == 0
    finally:
        await room.close()

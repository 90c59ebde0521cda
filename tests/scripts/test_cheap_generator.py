"""The cheap load generator: paced publishers (clips packetized once, sent through the
direct send path on one clock) and subscribers that count in the socket's callback, against
a real server process; and the pure logic of the tracks' clocks and the packetized clip."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor, vp8_depayload

from scripts.load import batch_reads
from scripts.load.counting import CountingClient, StreamCounter
from scripts.load.population import build_population
from scripts.synthpeer.api_client import ClassroomApi
from scripts.synthpeer.media import (
    AUDIO_FRAME_SAMPLES,
    AUDIO_RATE,
    EncodedVideoTrack,
    SendLog,
    ToneAudioTrack,
    vp8_clip,
)
from scripts.synthpeer.pacing import Pacer, packetize_video
from scripts.synthpeer.peer import SyntheticPeer
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig, native_receive
from tests.server_process import ServerProcess
from tests.waiting import wait_until


def test_a_packetized_clip_depayloads_to_its_frames() -> None:
    clip = vp8_clip(frames=4, width=320, height=180, bitrate=300_000)
    packetized = packetize_video(clip)
    assert packetize_video(clip) is packetized  # once per clip
    assert packetized.keyframes == (True, False, False, False)
    for frame, payloads in zip(clip.frames, packetized.frames, strict=True):
        assert b"".join(vp8_depayload(p) for p in payloads) == frame
        assert {VpxPayloadDescriptor.parse(p)[0].picture_id for p in payloads} == {0}


def test_a_sink_takes_whole_frames_as_the_native_receive_path_gives_them() -> None:
    clip = vp8_clip(frames=6, width=320, height=180, bitrate=300_000)
    packetized = packetize_video(clip)
    sink = StreamSink("video", "VP8", decode="all")
    for index, payloads in enumerate(packetized.frames):
        sink.push_frame(payloads, 3000 * index, packetized.keyframes[index])
    assert (sink.frames, sink.keyframes, sink.decoded, sink.decode_errors) == (6, 1, 6, 0)
    assert sink.packets == sum(len(payloads) for payloads in packetized.frames)
    assert sink.bytes == sum(len(frame) for frame in clip.frames)  # depayloaded
    assert sink.keyframe_sizes == [(320, 180)] and sink.last_size == (320, 180)
    assert sink.order_violations(len(clip.frames)) == 0
    sink.lost_frame()
    assert sink.losses == 1 and sink.frames_lost_in_transit == 1


def test_a_paced_video_track_keeps_the_clock_and_counters_of_recv() -> None:
    log = SendLog()
    track = EncodedVideoTrack(vp8_clip(frames=4, width=320, height=180), send_log=log, seed=1)
    assert track.next_due(100.0) == 100.0
    assert track.take_frame(100.0) == (0, 0)
    assert track.next_due(100.01) == pytest.approx(100.0 + 1 / 30)
    index, pts = track.take_frame(100.04)
    assert index == 1 and 2980 <= pts <= 3020
    assert log.sent_at(pts) == 100.04
    track.request_keyframe()
    assert track.next_due(100.05) == pytest.approx(100.0 + 2 / 30)
    assert track.take_frame(100.07)[0] == 0  # the loop restarted at its keyframe
    assert (track.frames_sent, track.keyframes_sent, track.keyframe_requests) == (3, 2, 1)


def test_a_paced_microphone_sends_nothing_while_paused_and_does_not_catch_up() -> None:
    track = ToneAudioTrack(mode="packets")
    frame = AUDIO_FRAME_SAMPLES / AUDIO_RATE
    assert track.next_due(10.0) == 10.0
    track.take_frame(10.0)
    assert track.next_due(10.0) == pytest.approx(10.0 + frame)
    track.pause()
    assert track.next_due(12.0) is None
    track.resume()
    assert track.next_due(15.0) == pytest.approx(15.0 + frame)  # no burst for the pause
    assert track.take_frame(15.02) == (1, AUDIO_FRAME_SAMPLES)


@pytest.mark.skipif(not batch_reads.AVAILABLE, reason="no recvmmsg here")
def test_a_batch_read_counts_media_in_place_and_passes_the_rest_on_in_order() -> None:
    seen: list[tuple[int, bytes]] = []
    passed: list[tuple[bytes, object]] = []

    def handler(buffer: memoryview, offset: int, length: int) -> bool:
        seen.append((length, bytes(buffer[offset : offset + 2])))
        return buffer[offset + 1] == 96  # consume payload type 96 only

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        sender.bind(("127.0.0.1", 0))
        datagrams = [bytes([0x80, 96]) + bytes(100 + i) for i in range(batch_reads.BATCH + 5)]
        datagrams[3] = bytes([0x80, 111]) + b"not consumed"
        datagrams[7] = b"\x00\x01 a STUN message"
        for datagram in datagrams:
            sender.sendto(datagram, receiver.getsockname())
        sender_name = sender.getsockname()
        reader = batch_reads.BatchReader(handler)
        reader(receiver, lambda data, addr: passed.append((data, addr)))
    finally:
        receiver.close()
        sender.close()
    assert reader.datagrams == len(datagrams) and reader.batches == 2
    media = [d for d in datagrams if d[0] == 0x80]
    assert seen == [(len(d), d[:2]) for d in media]
    assert passed == [(datagrams[3], sender_name), (datagrams[7], sender_name)]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ClassroomApi]:
    server = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "ICE_ADDRESSES": "127.0.0.1"},
        tmp_path / "server.log",
    )
    await server.start()
    try:
        async with ClassroomApi(server.base_url) as client:
            yield client
    finally:
        server.stop()


async def test_paced_publishers_and_counting_subscribers_measure_what_was_sent(
    api: ClassroomApi,
) -> None:
    plans, failures = await build_population(api, 1, 2, concurrency=2)
    assert failures == []
    plan = plans[0]
    clip = vp8_clip(frames=60)
    counters: list[StreamCounter] = []
    clients: list[CountingClient] = []

    def media_for(user: str):  # type: ignore[no-untyped-def]
        def make(config: MediaConfig) -> CountingClient:
            client = CountingClient(
                config,
                subscriber=user,
                full_streams=1,
                full_first=plan.teacher.id,
                on_counter=counters.append,
                video=clip,
                audio=ToneAudioTrack(mode="packets"),
                sink_factory=lambda kind, codec: StreamSink(kind, codec, decode="all"),
                paced=True,
            )
            clients.append(client)
            return client

        return make

    accounts = [plan.teacher, *plan.students]
    peers = [
        SyntheticPeer(api, account, media_for(account.id), class_id=plan.class_id)
        for account in accounts
    ]
    try:
        for peer in peers:
            await peer.join()
        for peer in peers:
            await peer.wait_connected()
        teacher, student, other = peers
        assert student.media is not None and teacher.media is not None

        async def flowing() -> bool:
            video = [c for c in counters if c.kind == "video" and not c.closed]
            return len(video) == 6 and all(c.frames >= 60 for c in video)

        await wait_until(flowing, timeout=20)
        assert len(Pacer.of(asyncio.get_running_loop())) == 3 * 2  # camera + microphone each

        # The teacher's camera was received whole (by the C receive path where it is
        # built) into a decoding sink; the other student's was only counted (dropped in
        # the socket's callback).
        student_media = student.media
        assert isinstance(student_media, CountingClient)
        only_counted_sinks = [
            sink
            for stream in student_media.streams_of(other.user_id)
            for sink in stream.sinks.values()
        ]
        assert only_counted_sinks and all(sink.packets == 0 for sink in only_counted_sinks)
        sink = student_media.sink_of(teacher.user_id, "camera")
        assert sink is not None and sink.decoded >= 30 and sink.decode_errors == 0
        if native_receive.AVAILABLE:
            assert student_media.frames_received_natively >= sink.frames > 0
        assert student_media.counts_in_c == native_receive.AVAILABLE
        assert sink.picture_id_gaps == 0  # picture ids run on across the clip's loop
        assert sink.order_violations(len(clip.frames)) == 0
        by_pair = {(c.subscriber, c.publisher, c.kind): c for c in counters if not c.closed}
        counted = by_pair[(student.user_id, teacher.user_id, "video")]
        assert counted.full and counted.packets >= sink.packets > 0
        only_counted = by_pair[(student.user_id, other.user_id, "video")]
        assert not only_counted.full and only_counted.expected - only_counted.packets <= 1

        # What the pacer sent is what arrived: no loss on loopback, at the clip's rate.
        paced = teacher.media.paced_streams
        sent = sum(s.rtp.packets_sent for s in paced if s.source.kind == "video")
        assert sent > 0 and counted.expected <= sent
        video_track = teacher.media.video_track
        assert isinstance(video_track, EncodedVideoTrack)
        frames, packets, started = video_track.frames_sent, counted.packets, time.monotonic()
        await asyncio.sleep(2)
        span = time.monotonic() - started
        assert 25 < (video_track.frames_sent - frames) / span < 35  # the clip's 30 fps
        assert counted.packets > packets
    finally:
        for peer in peers:
            await peer.close()
    assert len(Pacer.of(asyncio.get_running_loop())) == 0

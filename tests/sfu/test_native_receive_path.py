"""The native receive path with real aiortc peers over loopback: a publish connection's
media goes through the C receiver (batched reads, frames instead of packets), and what
aiortc's receiver did per packet still happens: receiver reports and REMB upstream,
NACKs at 2 % loss, keyframe requests, and forwarding of the payloads as they arrived.
The same media tests run on the Python path with ``SFU_NATIVE=0`` (see .ci/run)."""

from __future__ import annotations

import asyncio
import dataclasses
from functools import partial

import pytest

from scripts.support.loopback import CLIP_FRAMES, LOOPBACK, Room, wait_for
from sfu import aiortc_adapter, native_receive
from sfu.aiortc_adapter import NativePublishReceive, testing
from sfu.config import MediaConfig
from tests.native_extensions import require_extension


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_extension(native_receive.AVAILABLE, "sfu._receive")


def native_path(room: Room, name: str) -> NativePublishReceive:
    pc = room.participants[name].publish_pc
    assert pc is not None
    [native] = aiortc_adapter.native_receive_of(pc)
    return native


async def watch_teacher(room: Room, frames: int = 60) -> None:
    await room.join("teacher")
    await room.join("student", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= frames,
        timeout=10,
        what="video forwarded from the native receive path",
    )


async def test_published_media_is_read_in_batches_and_reaches_python_as_frames(
    room: Room,
) -> None:
    await watch_teacher(room)
    native = native_path(room, "teacher")
    assert native.draining  # the nominated socket is read by recvmmsg, not asyncio
    receiver = native.receiver
    assert receiver is not None
    assert receiver.unprotect_errors == 0 and receiver.malformed == 0
    # Python handles one event per frame: fewer than the datagrams (3 per video frame).
    assert native.frames < receiver.datagrams
    producers = {p.kind: p for p in room.router.producers.values()}
    video = producers["video"].stats()
    assert video.packets > video.frames > 30 and video.keyframes >= 1
    assert producers["audio"].stats().packets >= producers["audio"].stats().frames > 30
    sink = room.sink("student", "teacher", "video")
    assert sink is not None
    assert sink.decode_errors == 0 and sink.sizes == {(640, 360)}
    assert sink.order_violations(CLIP_FRAMES) == 0


async def test_the_publisher_gets_receiver_reports_and_a_remb(room: Room) -> None:
    await watch_teacher(room)
    client = room.clients["teacher"]
    assert client.publish_pc is not None

    async def reported() -> bool:
        for sender in client.publish_pc.getSenders():  # type: ignore[union-attr]
            stats = await sender.getStats()
            if not any(s.type == "remote-inbound-rtp" for s in stats.values()):
                return False
        return True

    for _ in range(40):
        if await reported():
            break
        await asyncio.sleep(0.1)
    assert await reported(), "no receiver report reached the publisher"
    native = native_path(room, "teacher")
    await wait_for(lambda: native.rembs_sent >= 1, timeout=3, what="a REMB to the publisher")
    assert native.remb_bitrate == room.config.publisher_remb_ceiling


async def test_two_percent_uplink_loss_is_nacked_and_repaired() -> None:
    room = Room()
    try:
        await room.join("teacher", loss_every=50)
        await room.join("student", video=False, audio=False)
        await wait_for(
            lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 90,
            timeout=10,
            what="3 s of video through a lossy uplink",
        )
        video = next(p for p in room.router.producers.values() if p.kind == "video")
        assert video.nacks_sent >= 3
        assert video.stats().skipped_frames == 0
        sink = room.sink("student", "teacher", "video")
        assert sink is not None
        assert sink.losses == 0 and sink.decode_errors == 0
        assert sink.order_violations(CLIP_FRAMES) == 0
    finally:
        await room.close()


async def test_a_new_subscriber_gets_a_keyframe_requested_from_the_publisher(
    room: Room,
) -> None:
    await watch_teacher(room, frames=10)
    video = next(p for p in room.router.producers.values() if p.kind == "video")
    sent = video.stats().plis_sent
    await room.join("late", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("late", "teacher", "video")) is not None and s.decoded >= 5,
        timeout=10,
        what="the late joiner decoding",
    )
    assert video.stats().plis_sent > sent


async def test_the_python_path_is_kept_when_native_receive_is_off() -> None:
    config = dataclasses.replace(LOOPBACK, native_receive=False)
    assert config.media_paths["receive"] == "python"
    room = Room(config)
    try:
        await watch_teacher(room, frames=30)
        pc = room.participants["teacher"].publish_pc
        assert pc is not None
        assert aiortc_adapter.native_receive_of(pc) == []
    finally:
        await room.close()


def test_the_paths_are_reported_as_configured() -> None:
    assert MediaConfig().media_paths["receive"] == "native"
    assert MediaConfig(native_receive=False).media_paths["receive"] == "python"
    assert MediaConfig(sync_receive=False).media_paths["receive"] == "python"
    with pytest.raises(ValueError, match="publisher_remb_ceiling"):
        MediaConfig(publisher_remb_ceiling=0)


async def test_a_remb_flood_from_a_subscriber_is_thinned_and_still_heard(room: Room) -> None:
    # aiortc's receiver sends a REMB with every packet while its detector sees overuse
    # (a loaded machine): ~60 a second per subscriber, here 40 at once.
    await watch_teacher(room)
    reads = aiortc_adapter.ControlReads.of(asyncio.get_running_loop())
    assert reads.native_readers >= 1
    client = room.clients["student"]
    assert client.subscribe_pc is not None
    video = next(t for t in client.subscribe_pc.getTransceivers() if t.kind == "video")
    [ssrc] = [s.source for s in video.receiver.getSynchronizationSources()]
    downlink = room.participants["student"].subscription.downlink()
    assert downlink is not None
    heard = False
    for round_ in range(5):
        # The subscriber's own REMBs (two a second) may come just before a burst and
        # make it drop the burst's first too: then the next round is heard.
        dropped = reads.rembs_dropped
        burst = [300_000 + 10_000 * round_ + i for i in range(0, 4000, 200)]
        for bitrate in burst:
            await testing.send_remb(video.receiver, bitrate, [ssrc])
        target = dropped + 15
        await wait_for(partial(dropped_at_least, reads, target), what="REMBs dropped")
        await asyncio.sleep(0.15)
        if downlink.remb is not None and round(downlink.remb) in burst[:2]:
            heard = True
            break
    assert heard, "no REMB of a burst reached the downlink estimate"


def dropped_at_least(reads: aiortc_adapter.ControlReads, count: int) -> bool:
    return reads.rembs_dropped >= count


async def test_steady_state_frames_go_from_the_receive_path_to_the_fan_out_without_python(
    room: Room,
) -> None:
    await room.join("teacher", audio_mode="frames", audio_level=-20)  # levels in each packet
    await room.join("student", video=False, audio=False)
    native = native_path(room, "teacher")
    producers = {p.kind: p for p in room.router.producers.values()}
    video, audio = producers["video"], producers["audio"]
    await wait_for(
        lambda: video.handed_off and audio.handed_off, timeout=5, what="the direct hand-off"
    )
    sink = room.sink("student", "teacher", "video")
    audio_sink = room.sink("student", "teacher", "audio")
    assert sink is not None and audio_sink is not None
    python, reports = native.frames, native.reports
    counted = video.stats().frames + audio.stats().frames
    seen, heard, levels = sink.frames, audio_sink.frames, len(room.events.audio_levels)
    await wait_for(lambda: sink.frames >= seen + 90, timeout=10, what="3 s more of video")

    handed = video.stats().frames + audio.stats().frames - counted
    assert handed > 200  # 30 video and 50 audio frames a second, all counted
    # Python saw the keyframes and, about one frame in 32 per subscriber, what the C
    # fan-out left it (a route check): not the frames themselves.
    assert native.frames - python <= video.stats().keyframes + 2
    assert 0 < native.reports - reports < handed / 8
    assert audio_sink.frames > heard + 100
    # Levels are tallied in C, and still reported.
    assert [level for _, level, _ in room.events.audio_levels[levels:]].count(-20) >= 5
    assert sink.decode_errors == 0 and sink.order_violations(CLIP_FRAMES) == 0
    assert video.is_flowing() and audio.is_flowing()


async def test_a_recorder_sink_takes_the_frames_back_to_python(room: Room) -> None:
    await watch_teacher(room, frames=10)
    video = next(p for p in room.router.producers.values() if p.kind == "video")
    await wait_for(lambda: video.handed_off, timeout=5, what="the direct hand-off")
    frames: list[object] = []
    sink = frames.append
    video.add_sink(sink)
    assert not video.handed_off
    await wait_for(lambda: len(frames) >= 30, timeout=5, what="frames for the sink")
    video.remove_sink(sink)
    assert video.handed_off
    video.pause()
    assert not video.handed_off


async def test_without_the_hand_off_every_frame_comes_to_python() -> None:
    room = Room(dataclasses.replace(LOOPBACK, native_handoff=False))
    try:
        await watch_teacher(room, frames=60)
        video = next(p for p in room.router.producers.values() if p.kind == "video")
        assert not video.handed_off
        assert native_path(room, "teacher").frames >= video.stats().frames
    finally:
        await room.close()

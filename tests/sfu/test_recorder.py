"""The recorder as a frame sink of real producers: files PyAV can open and play."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from scripts.support.loopback import CLIP_FRAMES, Room, wait_for
from scripts.synthpeer.media import RenderedVideoTrack
from sfu.recorder import LIMIT_REACHED, Recorder
from tests.recording.inspect import inspect_file, missing_frames


async def _publishing(room: Room, *names: str) -> None:
    for name in names:
        await room.join(name)
    await wait_for(
        lambda: (
            len(room.router.producers) == 2 * len(names)
            and all(p.frames > 5 for p in room.router.producers.values())
        ),
        timeout=10,
        what="producers flowing",
    )


async def test_each_track_is_recorded_from_a_keyframe_with_true_duration_and_no_gaps(
    room: Room, tmp_path: Path
) -> None:
    await _publishing(room, "alice", "bob")
    recorder = Recorder(tmp_path)
    started = time.monotonic()
    for producer in room.router.producers.values():
        recorder.add_producer(producer)
    await asyncio.sleep(3.0)
    elapsed = time.monotonic() - started  # stop() detaches first, then finishes the files
    tracks = await recorder.stop()

    assert {(t.participant_id, t.kind) for t in tracks} == {
        ("alice", "audio"),
        ("alice", "video"),
        ("bob", "audio"),
        ("bob", "video"),
    }
    for track in tracks:
        report = inspect_file(track.path)
        assert report.kinds == [track.kind]
        assert report.decode_errors == 0
        truth = elapsed - track.offset
        assert abs(report.duration - truth) <= 0.05 * truth, (track, report.duration, truth)
        assert abs(track.duration - report.duration) <= 0.05 * truth
        assert track.size == track.path.stat().st_size > 0
        if track.kind == "video":
            assert report.video_frames >= 75
            assert report.indices[0] is not None
            assert None not in report.indices
            assert missing_frames(report.indices, CLIP_FRAMES) == 0
        else:
            assert report.audio_samples >= 48000 * 2.5


async def test_a_participant_who_leaves_and_rejoins_gets_a_new_segment(
    room: Room, tmp_path: Path
) -> None:
    await _publishing(room, "alice")
    recorder = Recorder(tmp_path)
    for producer in room.router.producers.values():
        recorder.add_producer(producer)
    await asyncio.sleep(1.0)
    for producer in list(room.router.producers.values()):
        recorder.remove_producer(producer)
    await room.leave("alice")
    await _publishing(room, "alice")
    for producer in room.router.producers.values():
        recorder.add_producer(producer)
    await asyncio.sleep(1.0)
    tracks = await recorder.stop()

    names = sorted(t.path.name for t in tracks)
    assert names == [
        "alice-audio-1.mkv",
        "alice-audio-2.mkv",
        "alice-video-1.mkv",
        "alice-video-2.mkv",
    ]
    first, second = (t for t in tracks if t.kind == "video")
    assert second.offset >= first.offset + first.duration
    for track in tracks:
        assert inspect_file(track.path).decode_errors == 0


async def test_the_size_limit_stops_the_recording_and_leaves_playable_files(
    room: Room, tmp_path: Path
) -> None:
    await _publishing(room, "alice")
    reasons: list[str] = []
    recorder = Recorder(tmp_path, max_bytes=60_000, on_stopped=reasons.append)
    for producer in room.router.producers.values():
        recorder.add_producer(producer)
    await wait_for(lambda: bool(reasons), timeout=10, what="limit")
    tracks = await recorder.stop()
    assert reasons == [LIMIT_REACHED]
    assert recorder.bytes >= 60_000
    for track in tracks:
        report = inspect_file(track.path)
        assert report.decode_errors == 0 and report.duration > 0
    assert all(not p._sinks for p in room.router.producers.values())


async def test_h264_is_recorded_without_transcoding(room: Room, tmp_path: Path) -> None:
    await room.join("safari", audio=False, video_track=RenderedVideoTrack(30), video_codec="H264")
    await wait_for(
        lambda: any(p.frames > 5 for p in room.router.producers.values()),
        timeout=10,
        what="H.264 flowing",
    )
    producer = next(iter(room.router.producers.values()))
    assert producer.codec.name == "H264"
    recorder = Recorder(tmp_path)
    recorder.add_producer(producer)
    await asyncio.sleep(2.0)
    (track,) = await recorder.stop()
    report = inspect_file(track.path)
    assert report.kinds == ["video"] and report.decode_errors == 0
    assert report.size == (640, 360) and report.video_frames >= 45
    assert None not in report.indices
    assert abs(report.duration - track.duration) <= 0.1

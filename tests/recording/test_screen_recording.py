"""A screen share recorded live: real aiortc peers on loopback, the real recorder of a
room's recording (`api.recordings.live.LiveRecording`), then the compose tool.

The teacher publishes a microphone and a camera in two layers (only the high one is
recorded), shares a 4:3 screen during the recording and stops sharing; a student
publishes a microphone and a camera too. The share is a file of its
own, named and tagged as the screen, and the composed video shows it as the main cell
exactly while its segment lasts. What is checked comes from the files' own offsets and
durations, never from how long anything took."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from api.models import Recording
from api.recordings.compose_job import compose_manifest
from api.recordings.live import LiveRecording
from api.recordings.recovery import recovered_recording
from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.media import EncodedVideoTrack, ToneAudioTrack, vp8_clip
from sfu import Participant, Producer, TrackSpec, compose, create_peer_connection
from sfu import set_local_description as server_style_description
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.compose_layout import Rect, fit, grid_in, screen_canvas, screen_layout
from sfu.track_file import SOURCE_TAG, read_segment
from tests.recording.inspect import (
    barcode_in,
    brightness,
    clip_difference,
    composed_frames,
    inspect_file,
    missing_frames,
)

CLIP = 150
SCREEN_CLIP = 60
SCREEN = (480, 360)
CAMERA = (640, 360)
EDGE = 1 / compose.FPS
"""Output frames this close to a segment's edge are not checked (rounding of times)."""


class Teacher:
    """An aiortc client publishing a microphone and a camera (high and low layers), and a
    screen on demand."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.pc: RTCPeerConnection = create_peer_connection(room.config)
        self.tracks: dict[RTCRtpTransceiver, TrackSpec] = {}
        self.screen: RTCRtpTransceiver | None = None
        self.participant: Participant | None = None

    def _send(self, track: ToneAudioTrack | EncodedVideoTrack) -> RTCRtpTransceiver:
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        if isinstance(track, EncodedVideoTrack):
            adapter_testing.on_keyframe_request(transceiver.sender, track.request_keyframe)
        return transceiver

    async def publish(self) -> None:
        self.participant = self.room.add_participant("teacher", {"userId": "user-teacher"})
        self._send(ToneAudioTrack())
        high = self._send(EncodedVideoTrack(vp8_clip(CLIP)))
        low = self._send(EncodedVideoTrack(vp8_clip(CLIP, 320, 180, bitrate=150_000)))
        self.tracks = {high: TrackSpec("camera", 1), low: TrackSpec("camera", 0)}
        await self._negotiate()

    async def share(self) -> None:
        self.screen = self._send(EncodedVideoTrack(vp8_clip(SCREEN_CLIP, *SCREEN)))
        self.tracks[self.screen] = TrackSpec("screen")
        await self._negotiate()

    async def stop_sharing(self) -> None:
        assert self.screen is not None
        self.screen.direction = "inactive"
        await self._negotiate()

    async def _negotiate(self) -> None:
        assert self.participant is not None
        offer = await self.pc.createOffer()
        sdp = await server_style_description(self.pc, offer, self.room.config)
        tracks = {str(transceiver.mid): spec for transceiver, spec in self.tracks.items()}
        answer = await self.participant.publish(sdp, tracks)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    room = Room(auto_consume=False)
    try:
        yield room
    finally:
        await room.close()


def _producer(room: Room, source: str) -> Producer | None:
    return next((p for p in room.router.producers.values() if p.source == source), None)


async def _record(room: Room, teacher: Teacher, directory: Path) -> Recording:
    """Record: 1 s of cameras, 1.5 s with the teacher's screen share, 1 s after it."""
    await teacher.publish()
    await room.join("student", decode="none")
    await wait_for(
        lambda: sum(p.frames > 5 for p in room.router.producers.values()) == 5,
        timeout=10,
        what="both publishers flowing",
    )
    started = Recording(
        id="r1",
        class_id="c1",
        session_id="s1",
        started_by="user-teacher",
        started_at=datetime.now(UTC),
    )

    async def on_end(live: LiveRecording, reason: str | None) -> None:
        raise AssertionError(f"the recording ended by itself: {reason}")

    # Every producer, as the recording service passes a room's: the low layer is skipped.
    live = LiveRecording(started, directory, room.router.producers.values(), 10**9, on_end)
    await asyncio.sleep(1.0)
    await teacher.share()
    await wait_for(
        lambda: (screen := _producer(room, "screen")) is not None and screen.frames > 0,
        timeout=10,
        what="the screen share flowing",
    )
    screen = _producer(room, "screen")
    assert screen is not None
    live.add_producer(screen)  # as the room does for every producer added while recording
    await asyncio.sleep(1.5)
    await teacher.stop_sharing()
    await wait_for(lambda: screen.closed, timeout=10, what="the share stopped")
    live.remove_producer(screen)
    await asyncio.sleep(1.0)
    return await live.finish(None)


async def test_a_screen_share_is_its_own_file_and_the_composed_main_cell(
    room: Room, tmp_path: Path
) -> None:
    teacher = Teacher(room)
    directory = tmp_path / "rec"
    try:
        recording = await _record(room, teacher, directory)
    finally:
        await teacher.pc.close()

    files = {(f.user_id, f.source): f for f in recording.files}
    assert len(files) == len(recording.files)  # one file per source: no low camera layer
    assert set(files) == {
        ("user-teacher", "microphone"),
        ("user-teacher", "camera"),
        ("user-teacher", "screen"),
        ("student", "microphone"),
        ("student", "camera"),
    }
    shared = files["user-teacher", "screen"]
    assert shared.name == "teacher-screen-1.mkv" and shared.kind == "video"
    assert files["user-teacher", "camera"].name == "teacher-video-1.mkv"
    assert shared.public()["source"] == "screen"
    assert {f.public()["source"] for f in recording.files} == {"microphone", "camera", "screen"}
    # The share began a second in and lasted 1.5 s (its own timestamps, not the clock).
    assert shared.offset >= 1.0 and 1.0 <= shared.duration <= 2.5

    report = inspect_file(directory / shared.name)
    assert report.size == SCREEN and report.decode_errors == 0
    assert None not in report.indices and missing_frames(report.indices, SCREEN_CLIP) == 0
    camera = inspect_file(directory / files["user-teacher", "camera"].name)
    assert camera.size == CAMERA
    # The file says what it is, for crash recovery too.
    track, tags = read_segment(directory / shared.name)
    assert (track.source, tags[SOURCE_TAG]) == ("screen", "screen")
    recovered = await asyncio.to_thread(recovered_recording, recording, directory)
    assert {(f.name, f.source) for f in recovered.files} == {
        (f.name, f.source) for f in recording.files
    }

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(compose_manifest(recording, directory)))
    output = tmp_path / "composed.webm"
    await asyncio.to_thread(compose.compose, compose.load_manifest(manifest), output)

    cameras_from = max(f.offset for f in recording.files if f.source == "camera") + EDGE
    share_start, share_end = shared.offset, shared.offset + shared.duration + 0.2
    main = fit(*SCREEN, screen_layout(2).main or Rect(0, 0, 0, 0))
    bars = (Rect(0, 0, main.x, main.height), Rect(main.x + main.width, 0, main.x, main.height))
    counted = {"shared": 0, "alone": 0}
    for at, picture in composed_frames(output):
        assert picture.shape[1::-1] == screen_canvas(2)
        if share_start + EDGE <= at <= share_end - EDGE:
            counted["shared"] += 1
            index = barcode_in(picture, main, SCREEN)
            assert index is not None, at
            # The screen's own picture, whole, between black bars.
            assert clip_difference(picture, main, SCREEN, index) < 12, at
            assert all(brightness(picture, bar) < 8 for bar in bars), at
            cells = screen_layout(2).cameras
        elif at <= share_start - EDGE or at >= share_end + EDGE:
            counted["alone"] += 1
            cells = grid_in(2, screen_canvas(2)).cameras
        else:
            continue
        if at >= cameras_from:
            assert all(barcode_in(picture, cell, CAMERA) is not None for cell in cells), at
    assert counted["shared"] >= 15 and counted["alone"] >= 15, counted

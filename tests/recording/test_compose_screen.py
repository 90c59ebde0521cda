"""Composition of a recording with a screen share, from generated segments with exact
timestamps (`tests.recording.generated`): the share is the main cell while it is active,
the cameras small cells beside it; before and after, the cameras alone on the same canvas.
Without a share the output is the plain grid (tests/sfu/test_compose.py)."""

from __future__ import annotations

import asyncio
import json
import math
from fractions import Fraction
from pathlib import Path

from sfu import compose
from sfu.compose_layout import MAIN, Rect, grid_in, screen_canvas, screen_layout
from sfu.track_file import RecordedTrack
from tests.recording.generated import (
    SCREEN_SIZE,
    VIDEO_FPS,
    Publisher,
    manifest,
    write_segments,
)
from tests.recording.inspect import barcode_in, brightness, composed_frames
from tests.sfu.test_compose import _expected_cell

CAMERA = (640, 360)
# Offsets are exact binary fractions, and no output frame time falls on a segment's edge.
TEACHER = Publisher(
    "teacher", offset=0.0, video_frames=40, audio_packets=80, screen_frames=20, screen_offset=0.5
)
STUDENT = Publisher("student", offset=0.25, video_frames=40, audio_packets=80, tone_hz=660)


def _expected_screen(frames: int) -> list[int | None]:
    """The share's frame in each output frame: the latest one at or before that time while
    its segment (plus 0.2 s, as a camera's) covers it, else none (no share shown)."""
    start = Fraction(TEACHER.screen_offset)
    end = start + Fraction(TEACHER.screen_frames - 1, VIDEO_FPS) + Fraction(1, 30) + Fraction(1, 5)
    shown: list[int | None] = []
    for index in range(frames):
        at = Fraction(index, compose.FPS)
        latest = math.floor((at - start) * VIDEO_FPS)
        shown.append(min(latest, TEACHER.screen_frames - 1) if start <= at <= end else None)
    return shown


async def _composed(tmp_path: Path, tracks: list[RecordedTrack]) -> tuple[Path, int]:
    """Compose `tracks` (their manifest written to `tmp_path`): the output and its frames."""
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest(tracks)))
    output = tmp_path / "composed.webm"
    duration = await asyncio.to_thread(compose.compose, compose.load_manifest(path), output)
    return output, round(duration * compose.FPS)


async def test_the_screen_share_is_the_main_cell_while_it_is_active(tmp_path: Path) -> None:
    tracks = await asyncio.to_thread(write_segments, tmp_path / "rec", [TEACHER, STUDENT])
    assert sorted((t.path.name, t.source) for t in tracks) == [
        ("student-audio-1.mkv", "microphone"),
        ("student-video-1.mkv", "camera"),
        ("teacher-audio-1.mkv", "microphone"),
        ("teacher-screen-1.mkv", "screen"),
        ("teacher-video-1.mkv", "camera"),
    ]
    output, frames = await _composed(tmp_path, tracks)
    screen = _expected_screen(frames)
    cameras = [_expected_cell(p, frames) for p in (TEACHER, STUDENT)]
    assert [i for i, shown in enumerate(screen) if shown is not None] == list(range(8, 23))
    # The 4:3 share whole in the 16:9 main cell, black bars left and right.
    shown = Rect(120, 0, 720, 540)
    bars = (Rect(0, 0, 120, MAIN[1]), Rect(840, 0, 120, MAIN[1]))
    decoded = list(composed_frames(output))
    assert len(decoded) == frames
    for index, (_, picture) in enumerate(decoded):
        assert picture.shape[1::-1] == screen_canvas(2) == (1280, 540)
        if screen[index] is not None:
            layout = screen_layout(2)
            assert barcode_in(picture, shown, SCREEN_SIZE) == screen[index], index
            assert all(brightness(picture, bar) < 8 for bar in bars), index
        else:
            layout = grid_in(2, (1280, 540))
        seen = [barcode_in(picture, cell, CAMERA) for cell in layout.cameras]
        assert seen == [cameras[0][index], cameras[1][index]], index


async def test_three_cameras_around_a_share_show_in_cells_of_any_height(tmp_path: Path) -> None:
    """Three cameras on the share canvas have 480x270 grid cells: chroma planes of 135 rows,
    which do not span whole rows of the packed picture (the compose job once failed there)."""
    third = Publisher("third", offset=0.375, video_frames=40, audio_packets=80, tone_hz=880)
    publishers = [TEACHER, STUDENT, third]
    tracks = await asyncio.to_thread(write_segments, tmp_path / "rec", publishers)
    output, frames = await _composed(tmp_path, tracks)
    screen = _expected_screen(frames)
    cameras = [_expected_cell(p, frames) for p in publishers]
    grid = grid_in(3, screen_canvas(3)).cameras
    assert {(cell.width, cell.height) for cell in grid} == {(480, 270)}
    decoded = list(composed_frames(output))
    assert len(decoded) == frames and screen.count(None) >= 10
    for index, (_, picture) in enumerate(decoded):
        layout = grid if screen[index] is None else screen_layout(3).cameras
        seen = [barcode_in(picture, cell, CAMERA) for cell in layout]
        assert seen == [shown[index] for shown in cameras], index

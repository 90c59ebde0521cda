"""Composition of recorded segments into one grid video with mixed audio.

The segments are written from generated frames with exact timestamps
(`tests.recording.generated`), so every frame and sample of the composed file is known in
advance, however busy the machine. Recording live media is covered by
tests/sfu/test_recorder.py and, end to end with the compose job, tests/api/test_recordings.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from scripts.synthpeer.media import read_frame_index
from sfu import compose
from tests.recording.generated import (
    AUDIO_CLOCK,
    AUDIO_TICKS,
    VIDEO_FPS,
    Publisher,
    manifest,
    write_segments,
)

ROOT = Path(__file__).resolve().parents[2]
# Offsets are exact binary fractions, and no output frame time falls on a segment's edge.
PUBLISHERS = [
    Publisher("alice", offset=0.0, video_frames=40, audio_packets=80, tone_hz=440),
    Publisher("bob", offset=0.25, video_frames=40, audio_packets=80, tone_hz=660),
    Publisher("carol", offset=0.5, video_frames=40, audio_packets=80, tone_hz=880),
]
TONES = {p.participant: p.tone_hz for p in PUBLISHERS}


def _cells(path: Path, count: int) -> tuple[tuple[int, int], list[list[int | None]], int]:
    """Frame size, barcodes read per grid cell (each cell scaled back to 640x360), samples."""
    cols, _ = compose.grid(count)
    cw, ch = compose.CELL
    barcodes: list[list[int | None]] = [[] for _ in range(count)]
    samples = 0
    size = (0, 0)
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.AudioFrame):
                samples += frame.samples
                continue
            assert isinstance(frame, av.VideoFrame)
            size = (frame.width, frame.height)
            rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            for cell in range(count):
                x0, y0 = (cell % cols) * cw, (cell // cols) * ch
                crop = np.ascontiguousarray(rgb[y0 : y0 + ch, x0 : x0 + cw])
                part = av.VideoFrame.from_ndarray(crop, format="rgb24")
                big = part.reformat(width=640, height=360, format="yuv420p")
                barcodes[cell].append(read_frame_index(big))
    return size, barcodes, samples


def _audio(path: Path) -> npt.NDArray[np.float64]:
    """The composed file's audio track, decoded (mono, `compose.RATE`)."""
    with av.open(str(path)) as container:
        blocks = [
            frame.to_ndarray().reshape(-1).astype(np.float64) for frame in container.decode(audio=0)
        ]
    return np.concatenate(blocks)


def _tones_in(audio: npt.NDArray[np.float64], start: float, end: float) -> set[str]:
    """Whose tone is heard in `[start, end)` seconds (at least a tenth of the loudest)."""
    window = audio[round(start * compose.RATE) : round(end * compose.RATE)]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    frequencies = np.fft.rfftfreq(len(window), 1 / compose.RATE)
    level = {name: spectrum[np.argmin(np.abs(frequencies - hz))] for name, hz in TONES.items()}
    loudest = max(level.values())
    return {name for name, value in level.items() if value >= 0.1 * loudest}


def _video_duration(publisher: Publisher) -> float:
    """What the track file reports: first to last timestamp, plus one frame (1/30 s)."""
    return (publisher.video_frames - 1) / VIDEO_FPS + 1 / 30


def _audio_duration(publisher: Publisher) -> float:
    return (publisher.audio_packets - 1) * AUDIO_TICKS / AUDIO_CLOCK + 0.02


def _expected_cell(publisher: Publisher, frames: int) -> list[int | None]:
    """What one cell shows in each output frame: the participant's latest frame at or
    before that time while their video segment (plus 0.2 s) covers it, else black."""
    end = publisher.offset + _video_duration(publisher) + 0.2
    shown: list[int | None] = []
    for index in range(frames):
        at = Fraction(index, compose.FPS)
        if not publisher.offset <= at <= end:
            shown.append(None)
            continue
        latest = math.floor((at - Fraction(publisher.offset)) * VIDEO_FPS)
        shown.append(min(latest, publisher.video_frames - 1))
    return shown


async def test_the_composed_file_shows_every_participant_in_a_grid_with_audio(
    tmp_path: Path,
) -> None:
    tracks = await asyncio.to_thread(write_segments, tmp_path / "rec", PUBLISHERS)
    by_file = {(t.participant_id, t.kind): t for t in tracks}
    for publisher in PUBLISHERS:
        video = by_file[publisher.participant, "video"]
        audio = by_file[publisher.participant, "audio"]
        assert (video.frames, audio.frames) == (publisher.video_frames, publisher.audio_packets)
        assert video.offset == audio.offset == publisher.offset
        assert video.duration == pytest.approx(_video_duration(publisher), abs=1e-9)
        assert audio.duration == pytest.approx(_audio_duration(publisher), abs=1e-9)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest(tracks)))
    output = tmp_path / "composed.webm"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sfu.compose", str(path), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    # The output spans the last segment's end: 0.5 s + 1.6 s of audio, at FPS frames a second.
    last_end = max(p.offset + max(_video_duration(p), _audio_duration(p)) for p in PUBLISHERS)
    frames = math.ceil(last_end * compose.FPS)
    assert frames == 32
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    progress = [line["progress"] for line in lines if "progress" in line]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert lines[-1] == {"done": True, "duration": frames / compose.FPS}

    size, barcodes, samples = _cells(output, len(PUBLISHERS))
    assert size == (2 * compose.CELL[0], 2 * compose.CELL[1])
    # Cells in order of first appearance, each frame exactly the one due at that time.
    assert barcodes == [_expected_cell(p, frames) for p in PUBLISHERS]
    assert samples == frames * compose.BLOCK
    # The mix: each tone from its segment's offset to its end (1.6 s later).
    mixed = _audio(output)
    assert len(mixed) == samples
    assert _tones_in(mixed, 0.02, 0.24) == {"alice"}
    assert _tones_in(mixed, 0.27, 0.49) == {"alice", "bob"}
    assert _tones_in(mixed, 0.6, 1.5) == {"alice", "bob", "carol"}
    assert _tones_in(mixed, 1.87, 2.08) == {"carol"}

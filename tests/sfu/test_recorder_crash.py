"""A recording process killed with SIGKILL leaves files that play up to the kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.support.loopback import CLIP_FRAMES
from sfu.track_file import CLUSTER_MS, read_segment
from tests.recording.inspect import inspect_file, missing_frames

ROOT = Path(__file__).resolve().parents[2]


def test_files_of_a_killed_recorder_play_up_to_about_a_second_before_the_kill(
    tmp_path: Path,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.recording.crash_child", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        recorded = 0.0
        deadline = time.monotonic() + 30
        while recorded < 4.0 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, "the recording process ended early"
            recorded = float(line.split()[1])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["alice-audio-1.mkv", "alice-video-1.mkv"]
    lost_at_most = CLUSTER_MS / 1000 + 0.6
    for name in files:
        report = inspect_file(tmp_path / name)
        assert report.decode_errors == 0
        assert recorded - lost_at_most <= report.duration <= recorded + 0.5, (name, report)
        if name.startswith("alice-video"):
            assert None not in report.indices
            assert missing_frames(report.indices, CLIP_FRAMES) == 0


def test_a_segment_left_by_a_crash_describes_itself(tmp_path: Path) -> None:
    test_files_of_a_killed_recorder_play_up_to_about_a_second_before_the_kill(tmp_path)
    for name in ("alice-audio-1.mkv", "alice-video-1.mkv"):
        track, tags = read_segment(tmp_path / name)
        report = inspect_file(tmp_path / name, barcode=False)
        assert track.participant_id == "alice" and tags["user_id"] == "user-alice"
        assert track.kind == name.split("-")[1] and 0 <= track.offset < 2.0
        assert abs(track.duration - report.duration) <= 0.1
        assert track.size == (tmp_path / name).stat().st_size

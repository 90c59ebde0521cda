"""A recording the server never stopped (it crashed) is rebuilt from its files at start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from api.config import Settings
from api.ids import new_id
from api.models import Recording
from api.recordings.recovery import INTERRUPTED
from api.timeutil import utcnow

from .conftest import ServerFactory

ROOT = Path(__file__).resolve().parents[2]


def _record_then_crash(directory: Path, seconds: float) -> None:
    """Run the recording child process and SIGKILL it after ``seconds`` of recording."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.recording.crash_child", str(directory)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, "the recording process ended early"
            if float(line.split()[1]) >= seconds:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


async def test_an_interrupted_recording_is_closed_and_composed_at_the_next_start(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    settings = Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    first = await start_server(settings)
    room = await first.classroom(students=0)
    recording = Recording(
        id=new_id(),
        class_id=room.class_id,
        session_id=new_id(),
        started_by=room.teacher.id,
        started_at=utcnow(),
    )
    await first.services.store.put_recording(recording)
    folder = settings.recordings_path / room.class_id / recording.id
    await asyncio.to_thread(_record_then_crash, folder, 3.0)

    second = await start_server(settings)  # same data: its start recovers the recording
    path = f"/class/{room.class_id}/recordings/{recording.id}"
    deadline = time.monotonic() + 30
    while True:
        detail = await second.api.call("GET", path, token=room.teacher.token)
        if detail["job"]["status"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, detail
        await asyncio.sleep(0.1)
    assert detail["status"] == "stopped" and detail["stopReason"] == INTERRUPTED
    assert detail["job"]["status"] == "done", detail["job"]
    assert detail["participants"] == ["user-alice"]
    assert sorted((f["name"], f["kind"]) for f in detail["files"]) == [
        ("alice-audio-1.mkv", "audio"),
        ("alice-video-1.mkv", "video"),
    ]
    for file in detail["files"]:
        assert 1.5 <= file["duration"] <= 3.6

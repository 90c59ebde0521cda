"""Composition of recorded segments into one grid video with mixed audio."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.media import read_frame_index
from sfu import compose
from sfu.recorder import Recorder

ROOT = Path(__file__).resolve().parents[2]


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


async def test_the_composed_file_shows_every_participant_in_a_grid_with_audio(
    room: Room, tmp_path: Path
) -> None:
    for name in ("alice", "bob", "carol"):
        await room.join(name)
    await wait_for(lambda: len(room.router.producers) == 6, timeout=10, what="producers")
    recorder = Recorder(tmp_path / "rec")
    for producer in room.router.producers.values():
        recorder.add_producer(producer)
    await asyncio.sleep(2.0)
    tracks = await recorder.stop()
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "tracks": [
                    {
                        "path": str(t.path),
                        "participant": t.participant_id,
                        "kind": t.kind,
                        "offset": t.offset,
                        "duration": t.duration,
                    }
                    for t in tracks
                ]
            }
        )
    )
    output = tmp_path / "composed.webm"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sfu.compose", str(manifest), str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    progress = [line["progress"] for line in lines if "progress" in line]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert lines[-1]["done"] is True

    size, barcodes, samples = _cells(output, 3)
    assert size == (2 * compose.CELL[0], 2 * compose.CELL[1])
    for cell in barcodes:
        readable = [b for b in cell if b is not None]
        assert len(readable) >= 0.8 * len(cell), cell
    assert samples >= 0.9 * 2.0 * compose.RATE

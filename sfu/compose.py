"""Offline composition of a recording: every participant in one grid video, audio mixed.

Runs after the recording, never on the media event loop: the control plane starts it as
a subprocess (`python -m sfu.compose <manifest.json> <output.webm>`), reads one JSON
line per progress step from its stdout (`{"progress": 0.42}`, finally `{"done": true}`)
and a one-line reason on stderr if it fails (exit code 1).

The manifest is `{"tracks": [{"path", "participant", "kind", "offset", "duration"}]}`
(`sfu.recorder` segments). Participants get grid cells in order of first appearance;
a cell is black while its participant has no video. Output: WebM, VP8 at `FPS`, Opus mono.
"""

from __future__ import annotations

import fractions
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

FPS = 15
CELL = (320, 180)
RATE = 48000
BLOCK = RATE // FPS
_BLACK_Y, _BLACK_UV = 16, 128

Plane = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Segment:
    """One recorded file placed on the recording's timeline."""

    path: Path
    participant: str
    kind: str
    offset: float
    duration: float


def _frames(segment: Segment) -> Iterator[tuple[float, av.VideoFrame | av.AudioFrame]]:
    """Decoded frames with their time on the recording's timeline; stops at a bad file end."""
    with av.open(str(segment.path)) as container:
        stream = container.streams[0]
        try:
            for frame in container.decode(stream):
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                if frame.pts is None or frame.time_base is None:
                    continue
                yield segment.offset + float(frame.pts * frame.time_base), frame
        except av.error.FFmpegError:
            return  # a truncated file (crash) plays up to its last whole frame


class VideoSource:
    """One participant's video: the latest frame at or before each output time."""

    def __init__(self, segments: list[Segment]) -> None:
        self._segments = sorted(segments, key=lambda s: s.offset)
        self._frames = (f for s in self._segments for f in _frames(s))
        self._next = next(self._frames, None)
        self._cell: tuple[Plane, Plane, Plane] | None = None
        self._cell_time = -1.0

    def _visible(self, at: float) -> bool:
        return any(s.offset <= at <= s.offset + s.duration + 0.2 for s in self._segments)

    def cell_at(self, at: float) -> tuple[Plane, Plane, Plane] | None:
        """Y, U, V planes of the cell at `at` seconds, or `None` (black)."""
        while self._next is not None and self._next[0] <= at:
            time, frame = self._next
            assert isinstance(frame, av.VideoFrame)
            self._cell = _planes(frame.reformat(width=CELL[0], height=CELL[1], format="yuv420p"))
            self._cell_time = time
            self._next = next(self._frames, None)
        return self._cell if self._cell is not None and self._visible(at) else None


def _planes(frame: av.VideoFrame) -> tuple[Plane, Plane, Plane]:
    width, height = frame.width, frame.height
    packed = np.asarray(frame.to_ndarray(), dtype=np.uint8)
    quarter = height // 4
    y = packed[:height]
    u = packed[height : height + quarter].reshape(height // 2, width // 2)
    v = packed[height + quarter :].reshape(height // 2, width // 2)
    return y, u, v


class AudioSource:
    """One recorded audio segment, resampled to mono `RATE`, delivered in blocks."""

    def __init__(self, segment: Segment) -> None:
        self._frames = _frames(segment)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._pending: list[tuple[int, npt.NDArray[np.int16]]] = []
        self._done = False

    def mix_into(self, block: npt.NDArray[np.int32], start: int) -> None:
        """Add this source's samples in `[start, start + len(block))`."""
        end = start + len(block)
        while not self._done and (not self._pending or self._pending[-1][0] < end):
            item = next(self._frames, None)
            if item is None:
                self._done = True
                break
            at, frame = item
            assert isinstance(frame, av.AudioFrame)
            first = round(at * RATE)
            for out in self._resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1).astype(np.int16)
                self._pending.append((first, samples))
                first += len(samples)
        kept = []
        for first, samples in self._pending:
            last = first + len(samples)
            lo, hi = max(first, start), min(last, end)
            if lo < hi:
                block[lo - start : hi - start] += samples[lo - first : hi - first]
            if last > end:
                kept.append((first, samples))
        self._pending = kept


def grid(count: int) -> tuple[int, int]:
    """Columns and rows for `count` cells (as square as possible)."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def compose(segments: list[Segment], output: Path, progress: Any = None) -> float:
    """Write the grid video to `output`; returns its duration in seconds."""
    participants = list(
        dict.fromkeys(s.participant for s in sorted(segments, key=lambda s: s.offset))
    )
    cols, rows = grid(len(participants))
    width, height = cols * CELL[0], rows * CELL[1]
    total = max((s.offset + s.duration for s in segments), default=0.0)
    frames = max(1, math.ceil(total * FPS))
    videos = {
        p: VideoSource([s for s in segments if s.participant == p and s.kind == "video"])
        for p in participants
    }
    audios = [AudioSource(s) for s in segments if s.kind == "audio"]

    with av.open(str(output), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 400_000 * len(participants)
        # cpu-used -8: speed 8, fixed. A positive value in realtime mode lets libvpx pick
        # its speed from the measured encode time: the output would change with CPU load.
        video.options = {"deadline": "realtime", "cpu-used": "-8", "lag-in-frames": "0"}
        audio = container.add_stream("libopus", rate=RATE)
        audio.layout = "mono"
        y = np.full((height, width), _BLACK_Y, np.uint8)
        u = np.full((height // 2, width // 2), _BLACK_UV, np.uint8)
        v = np.full((height // 2, width // 2), _BLACK_UV, np.uint8)
        for index in range(frames):
            at = index / FPS
            for cell, participant in enumerate(participants):
                _paste(videos[participant].cell_at(at), cell % cols, cell // cols, y, u, v)
            packed = np.concatenate([y, u.reshape(-1, width), v.reshape(-1, width)])
            frame = av.VideoFrame.from_ndarray(packed, format="yuv420p")
            frame.pts = index
            frame.time_base = fractions.Fraction(1, FPS)
            container.mux(video.encode(frame))
            block = np.zeros(BLOCK, np.int32)
            for source in audios:
                source.mix_into(block, index * BLOCK)
            mixed = np.clip(block, -32768, 32767).astype(np.int16).reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(mixed, format="s16", layout="mono")
            sound.sample_rate = RATE
            sound.pts = index * BLOCK
            sound.time_base = fractions.Fraction(1, RATE)
            container.mux(audio.encode(sound))
            if progress is not None and (index % FPS == 0 or index == frames - 1):
                progress((index + 1) / frames)
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return frames / FPS


def _paste(
    cell: tuple[Plane, Plane, Plane] | None, col: int, row: int, y: Plane, u: Plane, v: Plane
) -> None:
    cw, ch = CELL
    x0, y0 = col * cw, row * ch
    if cell is None:
        y[y0 : y0 + ch, x0 : x0 + cw] = _BLACK_Y
        u[y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2] = _BLACK_UV
        v[y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2] = _BLACK_UV
        return
    cy, cu, cv = cell
    y[y0 : y0 + ch, x0 : x0 + cw] = cy
    u[y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2] = cu
    v[y0 // 2 : (y0 + ch) // 2, x0 // 2 : (x0 + cw) // 2] = cv


def load_manifest(path: Path) -> list[Segment]:
    """Segments from a manifest file (see the module docstring)."""
    raw = json.loads(path.read_text())
    return [
        Segment(
            path=Path(t["path"]),
            participant=str(t["participant"]),
            kind=str(t["kind"]),
            offset=float(t["offset"]),
            duration=float(t["duration"]),
        )
        for t in raw["tracks"]
    ]


def main(argv: list[str]) -> int:
    """CLI entry: progress as JSON lines on stdout; exit code 1 with a reason on failure."""
    if len(argv) != 2:
        print("usage: python -m sfu.compose <manifest.json> <output.webm>", file=sys.stderr)
        return 2

    def report(value: float) -> None:
        print(json.dumps({"progress": round(value, 4)}), flush=True)

    try:
        duration = compose(load_manifest(Path(argv[0])), Path(argv[1]), report)
    except Exception as error:  # the parent stores the reason as the job's error
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"done": True, "duration": duration}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

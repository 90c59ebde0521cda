"""Offline composition of a recording: every participant in one grid video, audio mixed.

Runs after the recording, never on the media event loop: the control plane starts it as
a subprocess (`python -m sfu.compose <manifest.json> <output.webm>`), reads one JSON
line per progress step from its stdout (`{"progress": 0.42}`, finally `{"done": true}`)
and a one-line reason on stderr if it fails (exit code 1).

The manifest is `{"tracks": [{"path", "participant", "kind", "offset", "duration",
"source"?}]}` (`sfu.recorder` segments; `source` defaults to the kind's). Participants get
camera cells in order of first appearance; a cell is black while its participant has no
video. While a screen share is active, it is the main (large) cell and the cameras are
small cells beside and below it (`sfu.compose_layout`). Output: WebM, VP8 at `FPS`, Opus
mono.
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

from sfu.compose_layout import CELL, Layout, Rect, fit, frame_layout, grid
from sfu.ids import TrackSource, source_named

__all__ = ["BLOCK", "CELL", "FPS", "RATE", "Segment", "compose", "grid", "load_manifest", "main"]

FPS = 15
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
    source: TrackSource | None = None
    """`None`: the kind's default (a microphone or a camera)."""

    @property
    def screen(self) -> bool:
        return self.source == "screen"


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
    """One participant's camera, or one screen share: the latest frame at or before each
    output time, scaled to the sizes asked for."""

    def __init__(self, segments: list[Segment]) -> None:
        self._segments = sorted(segments, key=lambda s: s.offset)
        self._frames = (f for s in self._segments for f in _frames(s))
        self._next = next(self._frames, None)
        self._frame: av.VideoFrame | None = None
        self._scaled: dict[tuple[int, int], tuple[Plane, Plane, Plane]] = {}

    @property
    def offset(self) -> float:
        return self._segments[0].offset if self._segments else 0.0

    def _visible(self, at: float) -> bool:
        return any(s.offset <= at <= s.offset + s.duration + 0.2 for s in self._segments)

    def frame_at(self, at: float) -> av.VideoFrame | None:
        """The frame shown at `at` seconds, or `None` (nothing to show)."""
        while self._next is not None and self._next[0] <= at:
            _, frame = self._next
            assert isinstance(frame, av.VideoFrame)
            self._frame = frame
            self._scaled.clear()
            self._next = next(self._frames, None)
        return self._frame if self._frame is not None and self._visible(at) else None

    def cell_at(self, at: float, size: tuple[int, int] = CELL) -> tuple[Plane, Plane, Plane] | None:
        """Y, U, V planes of the frame at `at` seconds scaled to `size`, or `None` (black)."""
        frame = self.frame_at(at)
        if frame is None:
            return None
        planes = self._scaled.get(size)
        if planes is None:
            scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            planes = self._scaled[size] = _planes(scaled)
        return planes


def _planes(frame: av.VideoFrame) -> tuple[Plane, Plane, Plane]:
    width, height = frame.width, frame.height
    # The three planes one after the other: a chroma plane spans whole luma rows only
    # when the height is a multiple of 4 (not a 480x270 cell), so split by sample count.
    packed = np.asarray(frame.to_ndarray(), dtype=np.uint8).reshape(-1)
    luma, chroma = width * height, width * height // 4
    y = packed[:luma].reshape(height, width)
    u = packed[luma : luma + chroma].reshape(height // 2, width // 2)
    v = packed[luma + chroma :].reshape(height // 2, width // 2)
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


def compose(segments: list[Segment], output: Path, progress: Any = None) -> float:
    """Write the composed video to `output`; returns its duration in seconds."""
    participants = list(
        dict.fromkeys(s.participant for s in sorted(segments, key=lambda s: s.offset))
    )
    total = max((s.offset + s.duration for s in segments), default=0.0)
    frames = max(1, math.ceil(total * FPS))
    videos = {
        p: VideoSource(
            [s for s in segments if s.participant == p and s.kind == "video" and not s.screen]
        )
        for p in participants
    }
    # Should two shares overlap (one taking over from the other), the later one is shown.
    screens = [
        VideoSource([s])
        for s in sorted(segments, key=lambda s: s.offset)
        if s.kind == "video" and s.screen
    ]
    width, height = frame_layout(len(participants), screens=bool(screens), sharing=False).size
    audios = [AudioSource(s) for s in segments if s.kind == "audio"]

    with av.open(str(output), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # A screen's text needs more bits than a camera's cell.
        video.bit_rate = 400_000 * len(participants) + (1_200_000 if screens else 0)
        # cpu-used -8: speed 8, fixed. A positive value in realtime mode lets libvpx pick
        # its speed from the measured encode time: the output would change with CPU load.
        video.options = {"deadline": "realtime", "cpu-used": "-8", "lag-in-frames": "0"}
        audio = container.add_stream("libopus", rate=RATE)
        audio.layout = "mono"
        y = np.full((height, width), _BLACK_Y, np.uint8)
        u = np.full((height // 2, width // 2), _BLACK_UV, np.uint8)
        v = np.full((height // 2, width // 2), _BLACK_UV, np.uint8)
        previous: Layout | None = None
        for index in range(frames):
            at = index / FPS
            shown = [s for s in screens if s.frame_at(at) is not None]
            screen = shown[-1] if shown else None
            layout = frame_layout(len(participants), screens=bool(screens), sharing=bool(shown))
            if layout is not previous:  # cells moved: clear what the last layout drew
                _paste(None, Rect(0, 0, width, height), y, u, v)
                previous = layout
            if layout.main is not None and screen is not None:
                _paste_screen(screen, at, layout.main, y, u, v)
            for cell, participant in zip(layout.cameras, participants, strict=True):
                size = (cell.width, cell.height)
                _paste(videos[participant].cell_at(at, size), cell, y, u, v)
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


def _paste_screen(screen: VideoSource, at: float, main: Rect, y: Plane, u: Plane, v: Plane) -> None:
    """The screen share whole in the main cell, black bars where its proportions differ."""
    frame = screen.frame_at(at)
    assert frame is not None
    shown = fit(frame.width, frame.height, main)
    if shown != main:
        _paste(None, main, y, u, v)
    _paste(screen.cell_at(at, (shown.width, shown.height)), shown, y, u, v)


def _paste(cell: tuple[Plane, Plane, Plane] | None, at: Rect, y: Plane, u: Plane, v: Plane) -> None:
    x0, y0, x1, y1 = at.x, at.y, at.x + at.width, at.y + at.height
    if cell is None:
        y[y0:y1, x0:x1] = _BLACK_Y
        u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = _BLACK_UV
        v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = _BLACK_UV
        return
    cy, cu, cv = cell
    y[y0:y1, x0:x1] = cy
    u[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = cu
    v[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = cv


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
            source=source_named(t.get("source"), str(t["kind"])),
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

"""Opens recorded files with PyAV and reports what a player would see."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from scripts.synthpeer.media import read_frame_index, render_frame
from sfu.compose_layout import Rect

Picture = npt.NDArray[np.uint8]
"""A decoded frame as RGB, rows by columns by 3."""


@dataclass
class FileReport:
    """Streams, duration and decoded content of one recorded or composed file."""

    kinds: list[str] = field(default_factory=list)
    duration: float = 0.0
    video_frames: int = 0
    audio_samples: int = 0
    decode_errors: int = 0
    indices: list[int | None] = field(default_factory=list)
    size: tuple[int, int] | None = None


def inspect_file(path: Path, *, barcode: bool = True) -> FileReport:
    """Decode every frame of `path`; duration is the span of decoded timestamps."""
    report = FileReport()
    first: float | None = None
    last = 0.0
    with av.open(str(path)) as container:
        report.kinds = sorted(s.type for s in container.streams)
        for packet in container.demux():
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                report.decode_errors += 1
                continue
            for frame in frames:
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                if frame.pts is None or frame.time_base is None:
                    continue
                at = float(frame.pts * frame.time_base)
                first = at if first is None else min(first, at)
                if isinstance(frame, av.VideoFrame):
                    report.video_frames += 1
                    report.size = (frame.width, frame.height)
                    last = max(last, at + 1 / 30)
                    if barcode:
                        report.indices.append(read_frame_index(frame))
                elif isinstance(frame, av.AudioFrame):
                    report.audio_samples += frame.samples
                    last = max(last, at + frame.samples / frame.sample_rate)
    report.duration = last - (first or 0.0)
    return report


def missing_frames(indices: list[int | None], loop: int) -> int:
    """Frames missing from a barcode sequence that counts up modulo `loop` and may restart
    at 0 (a keyframe request restarts the clip)."""
    known = [i for i in indices if i is not None]
    missing = 0
    for before, after in itertools.pairwise(known):
        if after == 0:
            continue
        missing += (after - before - 1) % loop
    return missing


def composed_frames(path: Path) -> Iterator[tuple[float, Picture]]:
    """Each video frame of a composed file (or of a recorded track): its time and its
    pixels (RGB)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            assert frame.pts is not None and frame.time_base is not None
            rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            yield float(frame.pts * frame.time_base), rgb


def barcode_in(picture: Picture, region: Rect, size: tuple[int, int]) -> int | None:
    """The barcode of the synthetic picture shown in `region`, scaled back to `size`
    (the size it was rendered at); `None` if unreadable."""
    crop = picture[region.y : region.y + region.height, region.x : region.x + region.width]
    part = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")
    return read_frame_index(part.reformat(width=size[0], height=size[1], format="yuv420p"))


def brightness(picture: Picture, region: Rect) -> float:
    """Mean RGB value in `region` (0 for black)."""
    crop = picture[region.y : region.y + region.height, region.x : region.x + region.width]
    return float(crop.mean())


def clip_difference(picture: Picture, region: Rect, size: tuple[int, int], index: int) -> float:
    """Mean luma difference between `region`, scaled back to `size`, and frame `index` of
    the synthetic clip rendered at `size` (a few units for the same picture after two
    encodings; tens for another picture)."""
    crop = picture[region.y : region.y + region.height, region.x : region.x + region.width]
    part = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), format="rgb24")
    seen = part.reformat(width=size[0], height=size[1], format="gray").to_ndarray()
    truth = render_frame(index, *size).reformat(format="gray").to_ndarray()
    return float(np.abs(seen.astype(np.int16) - truth.astype(np.int16)).mean())


def differing_pixels(picture: Picture, region: Rect, other: Picture, tolerance: int = 48) -> float:
    """The share of pixels in `region` of `picture` more than `tolerance` off in any channel
    from `other` scaled to the region's size. For Chromium's fake capture: about 0.1 % for
    the same picture after one more encoding (its edges), from 0.2 % (typically 4 %) for the
    next of its frames, from 3 % for its fake camera's picture at that moment."""
    crop = picture[region.y : region.y + region.height, region.x : region.x + region.width]
    whole = av.VideoFrame.from_ndarray(np.ascontiguousarray(other), format="rgb24")
    truth = whole.reformat(width=region.width, height=region.height).to_ndarray()
    off = np.abs(crop.astype(np.int16) - truth.astype(np.int16)).max(axis=2) > tolerance
    return float(off.mean())

"""Recorded segments made from generated frames with exact timestamps: no live media.

A participant's camera (and screen share, if any) is a VP8 clip at `VIDEO_FPS` whose
frame ``i`` carries barcode ``i`` (`scripts.synthpeer.media.read_frame_index` reads it
back), its audio an Opus tone in 20 ms packets. All go through `sfu.track_file.TrackFile`
as the recorder's writer thread writes them, with RTP timestamps and a first-frame arrival
``offset`` seconds after the recording began, so every count and time in the files is
known in advance. Both encoders are deterministic: the same bytes on every run, however
busy the machine.
"""

from __future__ import annotations

import fractions
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from scripts.synthpeer.media import render_frame
from sfu.ids import SOURCE_KIND, TrackSource
from sfu.track_file import RecordedTrack, TrackFile

VIDEO_FPS = 25
VIDEO_CLOCK = 90000
VIDEO_TICKS = VIDEO_CLOCK // VIDEO_FPS
AUDIO_CLOCK = 48000
AUDIO_TICKS = 960  # 20 ms
WIDTH, HEIGHT = 640, 360
SCREEN_SIZE = (480, 360)
"""4:3, so the composed main cell (16:9) shows it between black bars."""
RECORDING_START = 1000.0
"""The recording's start on the monotonic clock the recorder would use (any value)."""
_RTP_START = {"video": 1_234_567, "audio": 7_654_321}


@dataclass(frozen=True)
class Publisher:
    """What one participant published into the recording, and when it began."""

    participant: str
    offset: float
    video_frames: int
    audio_packets: int
    tone_hz: float = 440.0
    screen_frames: int = 0
    """A screen share of `SCREEN_SIZE` from `screen_offset` on (none without frames)."""
    screen_offset: float = 0.0


@functools.cache
def vp8_frames(count: int, width: int = WIDTH, height: int = HEIGHT) -> tuple[bytes, ...]:
    """`count` encoded frames, the first the only keyframe; frame ``i`` shows barcode ``i``."""
    codec = av.CodecContext.create("libvpx", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = 1_000_000
    codec.gop_size = 100_000
    codec.time_base = fractions.Fraction(1, VIDEO_FPS)
    # A negative cpu-used is a fixed speed; a positive one adapts to the measured encode time.
    codec.options = {"deadline": "realtime", "cpu-used": "-8", "lag-in-frames": "0"}
    frames = []
    for index in range(count):
        picture = render_frame(index, width, height)
        picture.pts = index
        picture.time_base = codec.time_base
        packets = codec.encode(picture)
        assert len(packets) == 1, f"frame {index}: {len(packets)} packets"
        frames.append(bytes(packets[0]))
    return tuple(frames)


@functools.cache
def opus_packets(count: int, tone_hz: float) -> tuple[bytes, ...]:
    """`count` 20 ms Opus packets of a stereo sine tone at `tone_hz`."""
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = AUDIO_CLOCK
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 64_000
    codec.time_base = fractions.Fraction(1, AUDIO_CLOCK)
    packets: list[bytes] = []
    block = 0
    while len(packets) < count:
        t = (block * AUDIO_TICKS + np.arange(AUDIO_TICKS)) / AUDIO_CLOCK
        tone = (12000 * np.sin(2 * math.pi * tone_hz * t)).astype(np.int16)
        samples = np.ascontiguousarray(np.repeat(tone, 2).reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = block * AUDIO_TICKS
        frame.time_base = codec.time_base
        packets.extend(bytes(p) for p in codec.encode(frame))
        block += 1
    return tuple(packets[:count])


def _write(
    directory: Path,
    publisher: Publisher,
    source: TrackSource,
    frames: tuple[bytes, ...],
    offset: float,
) -> RecordedTrack:
    kind = SOURCE_KIND[source]
    video = kind == "video"
    label = "screen" if source == "screen" else kind
    file = TrackFile(
        directory / f"{publisher.participant}-{label}-1.mkv",
        participant_id=publisher.participant,
        kind=kind,
        codec="VP8" if video else "opus",
        clock_rate=VIDEO_CLOCK if video else AUDIO_CLOCK,
        recording_start=RECORDING_START,
        source=source,
    )
    ticks = VIDEO_TICKS if video else AUDIO_TICKS
    for index, data in enumerate(frames):
        pts = _RTP_START[kind] + index * ticks
        written = file.write(data, pts, video and index == 0, RECORDING_START + offset)
        assert written == len(data)
    track = file.close()
    assert track is not None
    return track


def write_segments(directory: Path, publishers: list[Publisher]) -> list[RecordedTrack]:
    """One camera, one microphone and one screen segment file per publisher (none for
    zero frames)."""
    directory.mkdir(parents=True, exist_ok=True)
    tracks = []
    for p in publishers:
        if p.video_frames:
            tracks.append(_write(directory, p, "camera", vp8_frames(p.video_frames), p.offset))
        if p.audio_packets:
            packets = opus_packets(p.audio_packets, p.tone_hz)
            tracks.append(_write(directory, p, "microphone", packets, p.offset))
        if p.screen_frames:
            frames = vp8_frames(p.screen_frames, *SCREEN_SIZE)
            tracks.append(_write(directory, p, "screen", frames, p.screen_offset))
    return tracks


def manifest(tracks: list[RecordedTrack]) -> dict[str, Any]:
    """The compose job's manifest for `tracks` (as `api.recordings.compose_job` writes it)."""
    return {
        "tracks": [
            {
                "path": str(t.path),
                "participant": t.participant_id,
                "kind": t.kind,
                "source": t.source,
                "offset": t.offset,
                "duration": t.duration,
            }
            for t in tracks
        ]
    }

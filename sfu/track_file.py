"""One recorded track segment: encoded frames remuxed into a Matroska file with PyAV.

Used only on the recorder's writer thread (`sfu.recorder`); nothing here decodes, except
one H.264 keyframe to learn the picture size. Crash safety: clusters are closed at least
every `CLUSTER_MS` and each one is flushed to the file as it closes, so a killed process
leaves a file that plays up to about a second before the kill (no cues, no duration
header, which players and PyAV handle by reading the clusters).
"""

from __future__ import annotations

import fractions
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import OutputContainer
from av.stream import Stream

from sfu.ids import DEFAULT_SOURCE, MediaKind, TrackSource, source_named

CLUSTER_MS = 1000
OFFSET_TAG = "recording_offset"
PARTICIPANT_TAG = "participant"
SOURCE_TAG = "source"
MUXER_OPTIONS = {"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"}
_OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 312, 48000, 0, 0)
_CODEC_NAMES = {"VP8": "vp8", "H264": "h264", "opus": "opus"}


@dataclass(frozen=True)
class RecordedTrack:
    """What one finished segment file holds; `offset` is seconds after the recording began."""

    path: Path
    participant_id: str
    kind: MediaKind
    codec: str
    offset: float
    duration: float
    size: int
    frames: int
    source: TrackSource
    """What the track carried (a screen share is a video track of its own)."""


def vp8_size(keyframe: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 §9.1)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack("<HH", keyframe[6:10])
    return width & 0x3FFF, height & 0x3FFF


def _h264_size(keyframe: bytes) -> tuple[int, int] | None:
    decoder = av.CodecContext.create("h264", "r")
    for frame in decoder.decode(av.Packet(keyframe)):
        assert isinstance(frame, av.VideoFrame)
        return frame.width, frame.height
    return None


class TrackFile:
    """Writes one producer's frames from its first usable one (a keyframe for video)."""

    def __init__(
        self,
        path: Path,
        *,
        participant_id: str,
        kind: MediaKind,
        codec: str,
        clock_rate: int,
        recording_start: float,
        tags: Mapping[str, str] | None = None,
        source: TrackSource | None = None,
    ) -> None:
        self.path = path
        self.tags = dict(tags or {})
        self.participant_id = participant_id
        self.kind = kind
        self.source: TrackSource = source or DEFAULT_SOURCE[kind]
        self.codec = codec
        self._time_base = fractions.Fraction(1, clock_rate)
        self._recording_start = recording_start
        self._container: OutputContainer | None = None
        self._stream: Stream | None = None
        self._first_pts: int | None = None
        self._last_pts = 0
        self._offset = 0.0
        self.frames = 0
        self.bytes = 0
        self.needs_keyframe = kind == "video"

    @property
    def started(self) -> bool:
        return self._container is not None

    def write(self, data: bytes, pts: int, keyframe: bool, arrived: float) -> int:
        """Mux one frame; returns the bytes added (0 if it was skipped)."""
        if self.needs_keyframe:
            if not keyframe:
                return 0
            self.needs_keyframe = False
        if self._container is None:
            self._offset = max(0.0, arrived - self._recording_start)
            self._open(data)
            self._first_pts = pts
        assert self._stream is not None and self._container is not None
        assert self._first_pts is not None
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.time_base = self._time_base
        packet.pts = packet.dts = pts - self._first_pts
        packet.is_keyframe = keyframe
        self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1
        self.bytes += len(data)
        return len(data)

    def close(self) -> RecordedTrack | None:
        """Finish the file (cues, duration); `None` if nothing was ever written."""
        container, self._container = self._container, None
        if container is None:
            return None
        container.close()
        first = self._first_pts or 0
        frame = 0.02 if self.kind == "audio" else 1 / 30
        duration = float((self._last_pts - first) * self._time_base) + frame
        return RecordedTrack(
            path=self.path,
            participant_id=self.participant_id,
            kind=self.kind,
            codec=self.codec,
            offset=self._offset,
            duration=duration,
            size=self.path.stat().st_size,
            frames=self.frames,
            source=self.source,
        )

    def _open(self, first: bytes) -> None:
        container = av.open(str(self.path), "w", format="matroska", options=MUXER_OPTIONS)
        stream: Stream
        if self.kind == "audio":
            audio = container.add_stream("opus", rate=48000)
            audio.codec_context.extradata = _OPUS_HEAD
            audio.codec_context.layout = "stereo"
            stream = audio
        else:
            size = vp8_size(first) if self.codec == "VP8" else _h264_size(first)
            width, height = size or (640, 360)
            video = container.add_stream(_CODEC_NAMES.get(self.codec, "vp8"))
            context = video.codec_context
            assert isinstance(context, av.VideoCodecContext)
            context.width = width
            context.height = height
            stream = video
        stream.time_base = fractions.Fraction(1, 1000)
        # Written in the header, so a file that outlived a crash still says what it is.
        container.metadata.update(self.tags)
        container.metadata[OFFSET_TAG] = f"{self._offset:.3f}"
        container.metadata[PARTICIPANT_TAG] = self.participant_id
        container.metadata[SOURCE_TAG] = self.source
        label = "screen" if self.source == "screen" else self.kind
        container.metadata["title"] = f"participant {self.participant_id} {label}"
        container.metadata["creation_time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._container = container
        self._stream = stream


def read_segment(path: Path) -> tuple[RecordedTrack, dict[str, str]]:
    """Describe a segment file, also one a crash left unfinished, from its header and
    packets (nothing is decoded); returns the track and the file's tags."""
    with av.open(str(path)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
        stream = container.streams[0]
        kind: MediaKind = "audio" if stream.type == "audio" else "video"
        first: float | None = None
        last = 0.0
        frames = 0
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                at = float(packet.pts * packet.time_base)
                first = at if first is None else first
                last = max(last, at)
                frames += 1
        except av.error.FFmpegError:
            pass  # a crash cut the last cluster short: keep what was whole
    frame = 0.02 if kind == "audio" else 1 / 30
    track = RecordedTrack(
        path=path,
        participant_id=tags.get(PARTICIPANT_TAG, path.stem.split("-")[0]),
        kind=kind,
        codec=stream.codec_context.name,
        offset=float(tags.get(OFFSET_TAG, "0")),
        duration=(last - (first or 0.0)) + frame if frames else 0.0,
        size=path.stat().st_size,
        frames=frames,
        source=source_named(tags.get(SOURCE_TAG), kind),
    )
    return track, tags

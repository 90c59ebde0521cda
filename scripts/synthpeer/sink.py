"""A cheap receiving end: counts frames without decoding, decodes a sample (or all).

Fed by `sfu.aiortc_adapter.testing.intercept_receiver`, like the server, so the client's
aiortc receiver decodes nothing by itself; or whole frames at a time by the native
receive path (`push_frame`, `lost_frame`), which assembled them in C.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import av
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import depayload

from scripts.synthpeer.media import LatencyProbe, read_frame_index
from sfu import vp8
from sfu.assembler import (
    AudioFramePassthrough,
    Packet,
    VideoFrameAssembler,
    vp8_is_frame_start,
)

DecodeMode = Literal["none", "sample", "all"]

_CODECS = {
    "VP8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96),
    "H264": RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102),
    "opus": RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111),
}


class StreamSink:
    """Statistics of one received stream (one producer seen through one m-section).

    `decode="sample"` decodes the first `sample_frames` frames from the first keyframe
    on (enough to prove the stream is valid), ``"all"`` every frame, ``"none"`` nothing.
    Decoded video frames have their barcode read into `indices`. Every VP8 keyframe's
    picture size is read from its header (no decoding) into `keyframe_sizes`: which layer
    of a camera a forwarder is sending shows there. `record=True` keeps the time of every
    decoded frame (and a video frame's size) in `decoded_log`, for gaps and frame rates.
    """

    def __init__(
        self,
        kind: str,
        codec: str = "VP8",
        *,
        decode: DecodeMode = "sample",
        sample_frames: int = 10,
        probe: LatencyProbe | None = None,
        clock: Callable[[], float] = time.monotonic,
        record: bool = False,
    ) -> None:
        self.kind = kind
        self.codec = codec
        self.decode_mode: DecodeMode = decode
        self.sample_frames = sample_frames
        self.probe = probe
        self._clock = clock
        self.created_at = clock()
        self.packets = 0
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.losses = 0
        self.first_frame_at: float | None = None
        self.first_keyframe_at: float | None = None
        self.last_frame_at: float | None = None
        self.frames_before_keyframe = 0
        self.decoded = 0
        self.decode_errors = 0
        self.sizes: set[tuple[int, int]] = set()
        self.keyframe_sizes: list[tuple[int, int]] = []
        self.last_size: tuple[int, int] | None = None
        """Width and height of the last decoded picture."""
        self.indices: list[int | None] = []
        self.samples_decoded = 0
        self.decoded_log: list[tuple[float, tuple[int, int] | None]] | None = [] if record else None
        """(clock time, video picture size or None for audio) per decoded frame."""
        self._decoder: av.VideoCodecContext | av.AudioCodecContext | None = None
        self.on_loss: Callable[[], None] | None = None
        """Called when a frame was lost for good (the receiver then asks for a keyframe)."""
        self.picture_id_gaps = 0
        """Frames whose VP8 picture id is not the previous frame's + 1 (a receiver like
        Chromium's would wait for the frames in between)."""
        self._vp8 = kind == "video" and codec == "VP8"
        self._last_start: int | None = None
        self._last_picture_id: int | None = None
        self._native_skipped = 0
        self._assembler: VideoFrameAssembler | AudioFramePassthrough
        if kind == "video":
            self._assembler = VideoFrameAssembler(codec, self._on_frame, self._on_loss)
        else:
            self._assembler = AudioFramePassthrough(self._on_frame)

    def push(self, packet: Packet, data: bytes) -> None:
        self.packets += 1
        if self._vp8:
            payload = packet.payload
            if vp8_is_frame_start(payload) and packet.sequence_number != self._last_start:
                self._last_start = packet.sequence_number
                self._check_picture_id(vp8.picture_id(payload))
        self._assembler.push(packet, data)

    def push_frame(self, payloads: tuple[bytes, ...], pts: int, keyframe: bool) -> None:
        """A whole frame, assembled by the native receive path: its RTP payloads."""
        self.packets += len(payloads)
        if self._vp8:
            self._check_picture_id(vp8.picture_id(payloads[0]))
        codec = _CODECS.get(self.codec) or _CODECS["VP8" if self.kind == "video" else "opus"]
        parts = []
        for payload in payloads:
            try:
                parts.append(depayload(codec, payload))
            except ValueError:
                continue  # what aiortc's receiver drops
        self._on_frame(b"".join(parts), pts, keyframe)

    def lost_frame(self) -> None:
        """The native receive path skipped a frame for good."""
        self._native_skipped += 1
        self._on_loss()

    @property
    def frames_lost_in_transit(self) -> int:
        """Video frames the link lost for good (holes never filled by retransmission),
        plus one if the stream's first packets never came: what a sender cannot be
        blamed for. Always 0 for audio."""
        assembler = self._assembler
        if not isinstance(assembler, VideoFrameAssembler):
            return 0
        return self._native_skipped + assembler.skipped + (1 if assembler.unaligned_packets else 0)

    def _check_picture_id(self, picture_id: int | None) -> None:
        last = self._last_picture_id
        following = last is None or picture_id == (last + 1) & vp8.PICTURE_ID_MASK
        if picture_id is not None and not following:
            self.picture_id_gaps += 1
        self._last_picture_id = picture_id

    def fps(self, window_start: float | None = None) -> float:
        """Average frame rate since the first frame (or since `window_start`)."""
        if self.first_frame_at is None or self.last_frame_at is None:
            return 0.0
        span = self.last_frame_at - self.first_frame_at
        return (self.frames - 1) / span if span > 0 else 0.0

    def order_violations(self, clip_frames: int) -> int:
        """Decoded barcode indices that are neither the next one nor a restart at 0."""
        violations = 0
        previous: int | None = None
        for index in self.indices:
            if index is None:
                violations += 1
                continue
            if previous is not None and index not in ((previous + 1) % clip_frames, 0):
                violations += 1
            previous = index
        return violations

    def _on_loss(self) -> None:
        self.losses += 1
        if self.on_loss is not None:
            self.on_loss()

    def _on_frame(self, data: bytes, pts: int, keyframe: bool) -> None:
        now = self._clock()
        self.frames += 1
        self.bytes += len(data)
        self.last_frame_at = now
        if self.first_frame_at is None:
            self.first_frame_at = now
        if self.probe is not None:
            self.probe.on_frame(pts, now)
        if keyframe:
            self.keyframes += 1
            size = vp8_keyframe_size(data) if self.codec == "VP8" else None
            if size is not None:
                self.keyframe_sizes.append(size)
            if self.first_keyframe_at is None:
                self.first_keyframe_at = now
        elif self.first_keyframe_at is None:
            # The stream's first keyframe never arrived whole: ask again, as a browser
            # does when it has nothing it can decode.
            self.frames_before_keyframe += 1
            if self.on_loss is not None:
                self.on_loss()
            return
        if self.decode_mode == "all" or (
            self.decode_mode == "sample" and self.decoded < self.sample_frames
        ):
            self._decode(data, pts)

    def _decode(self, data: bytes, pts: int) -> None:
        if self._decoder is None:
            self._decoder = _decoder(self.kind, self.codec)
        packet = av.Packet(data)
        packet.pts = pts
        try:
            frames = self._decoder.decode(packet)
        except av.FFmpegError:
            self.decode_errors += 1
            return
        for frame in frames:
            self.decoded += 1
            size: tuple[int, int] | None = None
            if isinstance(frame, av.VideoFrame):
                size = self.last_size = (frame.width, frame.height)
                self.sizes.add(size)
                self.indices.append(read_frame_index(frame))
            elif isinstance(frame, av.AudioFrame):
                self.samples_decoded += frame.samples
            if self.decoded_log is not None:
                self.decoded_log.append((self._clock(), size))


def vp8_keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe's header (RFC 6386 9.1), else `None`."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


def _decoder(kind: str, codec: str) -> av.VideoCodecContext | av.AudioCodecContext:
    if kind == "audio":
        audio = av.CodecContext.create("libopus", "r")
        assert isinstance(audio, av.AudioCodecContext)
        audio.sample_rate = 48000
        audio.layout = "stereo"
        audio.format = "s16"
        return audio
    video = av.CodecContext.create("libvpx" if codec == "VP8" else "h264", "r")
    assert isinstance(video, av.VideoCodecContext)
    return video

"""Cheap synthetic media: a VP8 clip encoded once, looped as pre-encoded packets.

Every frame carries a barcode of its clip index (top-left, 10 cells of 32x32 pixels:
white sync cell, 8 index bits LSB first, black end cell), so a receiver that decodes can
check frame order and that pictures are intact. Sending costs no encoding: tracks'
`recv()` return `av.Packet`s that aiortc's sender only packetizes.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import itertools
import math
import random
import time
from array import array
from dataclasses import dataclass
from typing import Literal

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.stream import Stream

VIDEO_CLOCK_RATE = 90000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_RATE = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)
AUDIO_FRAME_SAMPLES = 960  # 20 ms

_CELL = 32
_CELLS = 10
_BAR_TOP = 8
_BAR_LEFT = 8
MAX_CLIP_FRAMES = 256


# ------------------------------------------------------------------------ the clip


def render_frame(
    index: int, width: int = 640, height: int = 360, *, noise: bool = True
) -> av.VideoFrame:
    """One synthetic picture: a scrolling textured background, a patch of noise (so
    the encoder has work, ~770 kbps at 640x360; `noise=False` leaves it out) and the
    barcode of `index`."""
    texture = _texture(width, height)
    dx = (index * 4) % width
    dy = (index * 2) % height
    luma = bytearray(b"".join(texture[y + dy][dx : dx + width] for y in range(height)))
    if noise:
        _draw_noise(luma, index, width, height)
    _draw_barcode(luma, index, width)
    return _picture(luma, width, height)


def _draw_noise(luma: bytearray, index: int, width: int, height: int) -> None:
    noise = _noise(width, height)
    patch_w, patch_h, patch_top = width // 5 * 3 // 4, height // 6, height // 4
    left = (index * 7) % (width - patch_w)
    for y in range(patch_top, patch_top + patch_h):
        start = y * width + left
        source = (index * 160 + y * width) % (len(noise) - patch_w)
        luma[start : start + patch_w] = noise[source : source + patch_w]


def render_screen(index: int, width: int = 1280, height: int = 720) -> av.VideoFrame:
    """A shared screen: a still page of fine detail (small high-contrast glyph blocks, like
    text) where only a caret line moves, and the barcode of `index`."""
    luma = bytearray(_page(width, height))
    caret_top = _BAR_TOP + _CELL + 16 + (index * 12) % max(1, height - _CELL - 64)
    for y in range(caret_top, min(height, caret_top + 8)):
        luma[y * width + width // 8 : y * width + width // 2] = bytes([16]) * (width * 3 // 8)
    _draw_barcode(luma, index, width)
    return _picture(luma, width, height)


@functools.cache
def _page(width: int, height: int) -> bytes:
    rows = []
    for y in range(height):
        line = y % 16
        if line >= 10:  # the gap between lines of "text"
            rows.append(bytes([235]) * width)
            continue
        glyphs = random.Random(y // 16).randbytes(width // 4)
        rows.append(bytes(235 if g & (1 << (line % 8)) else 16 for g in glyphs for _ in range(4)))
    return b"".join(rows)


def _draw_barcode(luma: bytearray, index: int, width: int) -> None:
    bits = [1] + [(index >> b) & 1 for b in range(8)] + [0]
    for cell, bit in enumerate(bits):
        value = bytes([235 if bit else 16]) * _CELL
        for y in range(_BAR_TOP, _BAR_TOP + _CELL):
            start = y * width + _BAR_LEFT + cell * _CELL
            luma[start : start + _CELL] = value


def _picture(luma: bytearray, width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    _fill_plane(frame.planes[0], bytes(luma), width, height)
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    _fill_plane(frame.planes[1], chroma, width // 2, height // 2)
    _fill_plane(frame.planes[2], chroma, width // 2, height // 2)
    return frame


def _fill_plane(plane: av.video.plane.VideoPlane, data: bytes, width: int, height: int) -> None:
    if plane.line_size == width:
        plane.update(data)
        return
    padding = bytes(plane.line_size - width)
    plane.update(b"".join(data[y * width : (y + 1) * width] + padding for y in range(height)))


@functools.cache
def _texture(width: int, height: int) -> list[bytes]:
    rnd = random.Random(1)
    blocks = [
        [rnd.randrange(40, 215) for _ in range(width * 2 // 16)]
        for _ in range(height * 2 // 16 + 1)
    ]
    return [bytes(v for v in blocks[y // 16] for _ in range(16)) for y in range(height * 2)]


@functools.cache
def _noise(width: int, height: int) -> bytes:
    return random.Random(2).randbytes(width * height)


def read_frame_index(frame: av.VideoFrame) -> int | None:
    """The clip index drawn in a decoded frame, or `None` if the barcode is unreadable."""
    plane = frame.planes[0]
    data = bytes(plane)
    row = (_BAR_TOP + _CELL // 2) * plane.line_size
    cells = []
    for cell in range(_CELLS):
        value = data[row + _BAR_LEFT + cell * _CELL + _CELL // 2]
        if 60 < value < 190:
            return None
        cells.append(value >= 128)
    if not cells[0] or cells[-1]:
        return None
    return sum(1 << b for b in range(8) if cells[1 + b])


@dataclass(frozen=True)
class EncodedClip:
    """A VP8 clip encoded once; see `vp8_clip`.

    `frames[0]` is the only keyframe (unless made `keyframes_only`); every other frame
    references its predecessors.
    A loop therefore restarts with a keyframe, and a keyframe request is answered by
    restarting the loop (exact: the receiver's references then match the encoder's).
    """

    width: int
    height: int
    fps: int
    frames: tuple[bytes, ...]

    @property
    def bitrate(self) -> float:
        """Average bits per second over the loop."""
        return sum(map(len, self.frames)) * 8 * self.fps / len(self.frames)


def _vp8_encoder(width: int, height: int, fps: int, bitrate: int, gop: int) -> av.VideoCodecContext:
    codec = av.CodecContext.create("libvpx", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width = width
    codec.height = height
    codec.bit_rate = bitrate
    codec.pix_fmt = "yuv420p"
    codec.gop_size = gop
    codec.qmin = 2
    codec.qmax = 56
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "bufsize": str(bitrate),
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "static-thresh": "1",
        "partitions": "0",
    }
    return codec


def _encode(codec: av.VideoCodecContext, frame: av.VideoFrame, pts: int, key: bool) -> bytes:
    frame.pts = pts
    frame.time_base = codec.time_base
    frame.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
    return b"".join(bytes(p) for p in codec.encode(frame))


Picture = Literal["camera", "thumbnail", "screen"]


@functools.cache
def vp8_clip(
    frames: int = 150,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    bitrate: int = 770_000,
    picture: Picture = "camera",
    keyframes_only: bool = False,
) -> EncodedClip:
    """Encode the synthetic clip once per process (about 0.3 s for 150 camera frames).

    `keyframes_only`: every frame a keyframe, so any subset of frames decodes (for
    checking a forwarder that leaves frames out, see `scripts.synthpeer.temporal`).

    `picture`: ``"camera"`` (`render_frame`: motion everywhere), ``"thumbnail"`` (the same
    without its noise patch, which no encoder squeezes under ~180 kbit/s at 320x180) or
    ``"screen"`` (`render_screen`: a still page of fine detail, for a low frame rate)."""
    if not 2 <= frames <= MAX_CLIP_FRAMES:
        raise ValueError(f"a clip has 2 to {MAX_CLIP_FRAMES} frames")
    encoder = _vp8_encoder(width, height, fps, bitrate, gop=100_000)
    chain = tuple(
        _encode(encoder, _render(picture, i, width, height), i, key=keyframes_only or i == 0)
        for i in range(frames)
    )
    return EncodedClip(width, height, fps, chain)


def _render(picture: Picture, index: int, width: int, height: int) -> av.VideoFrame:
    if picture == "screen":
        return render_screen(index, width, height)
    return render_frame(index, width, height, noise=picture == "camera")


@dataclass(frozen=True)
class CameraLayers:
    """A camera published twice (two m-sections, no simulcast RIDs): the same picture
    encoded once per layer."""

    high: EncodedClip
    low: EncodedClip


def camera_layers(
    frames: int = 150,
    fps: int = 30,
    high_bitrate: int = 500_000,
    low_bitrate: int = 120_000,
    high_size: tuple[int, int] = (640, 360),
    low_size: tuple[int, int] = (320, 180),
) -> CameraLayers:
    """Layer high ~640x360 and layer low 320x180 at <= 150 kbit/s (the defaults)."""
    return CameraLayers(
        vp8_clip(frames, *high_size, fps, high_bitrate),
        vp8_clip(frames, *low_size, fps, low_bitrate, "thumbnail"),
    )


def screen_clip(
    frames: int = 40, width: int = 1280, height: int = 720, fps: int = 5, bitrate: int = 400_000
) -> EncodedClip:
    """The teacher's shared screen: high detail, slow changes, a low frame rate."""
    return vp8_clip(frames, width, height, fps, bitrate, "screen")


# ------------------------------------------------------------------------ send-time registry


class SendLog:
    """Publisher side of latency probes: when each pts was sent, and how to find a pts.

    Frame pts advance by 3000 ± 20 ticks in a pseudo-random pattern. RTP timestamps
    survive forwarding (and MediaRelay's re-encoding) up to an unknown offset, so a
    receiver matches the pattern of the last four deltas to find which frame it got.
    """

    HISTORY = 1024
    SIGNATURE = 4

    def __init__(self) -> None:
        self._sent: dict[int, float] = {}
        self._order: list[int] = []
        self._signatures: dict[tuple[int, ...], int] = {}

    def record(self, pts: int, at: float) -> None:
        self._sent[pts] = at
        self._order.append(pts)
        if len(self._order) > self.SIGNATURE:
            recent = self._order[-self.SIGNATURE - 1 :]
            deltas = tuple(b - a for a, b in itertools.pairwise(recent))
            self._signatures[deltas] = pts
        if len(self._order) > self.HISTORY * 2:
            for old in self._order[: self.HISTORY]:
                self._sent.pop(old, None)
            del self._order[: self.HISTORY]

    def sent_at(self, pts: int) -> float | None:
        return self._sent.get(pts)

    def find(self, deltas: tuple[int, ...]) -> int | None:
        return self._signatures.get(deltas)


class LatencyProbe:
    """Receiver side: maps received frame timestamps to send times (same process)."""

    RESYNC_AFTER = 3
    """Consecutive frames without a send time after which the timestamp origin is sought
    again."""

    def __init__(self, log: SendLog) -> None:
        self._log = log
        self._recent: list[int] = []
        self._origin: int | None = None
        self._misses = 0
        self.samples: list[float] = []

    def on_frame(self, timestamp: int, at: float) -> None:
        """`timestamp`: the frame's RTP timestamp (unwrapped); `at`: arrival time."""
        if self._origin is None:
            self._recent.append(timestamp)
            if len(self._recent) <= SendLog.SIGNATURE:
                return
            recent = self._recent[-SendLog.SIGNATURE - 1 :]
            deltas = tuple(b - a for a, b in itertools.pairwise(recent))
            pts = self._log.find(deltas)
            if pts is None:
                return
            self._origin = timestamp - pts
        sent = self._log.sent_at(timestamp - self._origin)
        if sent is not None:
            self.samples.append(at - sent)
            self._misses = 0
            return
        self._misses += 1
        # A forwarder that switches layers keeps RTP timestamps continuous by moving their
        # offset, so the origin found before the switch no longer matches: find it again.
        if self._misses >= self.RESYNC_AFTER:
            self._origin, self._recent, self._misses = None, [], 0


# ------------------------------------------------------------------------ tracks


class EncodedVideoTrack(MediaStreamTrack):
    """Loops an `EncodedClip` in real time as pre-encoded packets.

    A keyframe request (hook it with `sfu.aiortc_adapter.testing.on_keyframe_request`)
    restarts the loop at its keyframe, so decoded barcode indices run 0, 1, 2... and may
    jump back to 0 at a keyframe.
    """

    kind = "video"

    def __init__(
        self, clip: EncodedClip, *, send_log: SendLog | None = None, seed: int | None = None
    ) -> None:
        super().__init__()
        self.clip = clip
        self.send_log = send_log
        self._rnd = random.Random(seed)
        self._start: float | None = None
        self._count = 0
        self._index = 0
        self._pts = 0
        self._want_keyframe = False
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.keyframe_requests = 0

    paced = False
    """Sent by a `scripts.synthpeer.pacing.Pacer` (which calls `next_due` and `take_frame`);
    `recv()` then never returns, so aiortc's sender sends nothing."""

    def request_keyframe(self) -> None:
        """Send a keyframe next (restart the loop)."""
        self.keyframe_requests += 1
        self._want_keyframe = True

    def next_due(self, now: float) -> float:
        """When the next frame is due; the first call starts the clock at `now`."""
        if self._start is None:
            self._start = now
            return now
        return self._start + (self._count + int(self.frames_sent > 0)) / self.clip.fps

    def take_frame(self, now: float) -> tuple[int, int]:
        """The next frame's clip index and pts, counted and logged as sent at `now`."""
        if self.frames_sent:
            self._count += 1
            self._index = (self._index + 1) % len(self.clip.frames)
            self._pts += VIDEO_CLOCK_RATE // self.clip.fps + self._rnd.randint(-20, 20)
        if self._want_keyframe:
            self._want_keyframe = False
            self._index = 0
        if self._index == 0:
            self.keyframes_sent += 1
        self.frames_sent += 1
        if self.send_log is not None:
            self.send_log.record(self._pts, now)
        return self._index, self._pts

    async def recv(self) -> av.Packet[Stream]:
        if self.readyState != "live":
            raise MediaStreamError
        if self.paced:
            await asyncio.get_running_loop().create_future()  # until the sender stops
        now = time.monotonic()
        wait = self.next_due(now) - now
        if wait > 0:
            await asyncio.sleep(wait)
        index, pts = self.take_frame(time.monotonic())
        packet = av.Packet(self.clip.frames[index])
        packet.pts = pts
        packet.time_base = VIDEO_TIME_BASE
        return packet


class RenderedVideoTrack(MediaStreamTrack):
    """Raw synthetic pictures (with the barcode) for aiortc to encode itself, e.g. to
    publish H.264. Costs an encoder per publisher: for tests, not for load."""

    kind = "video"

    def __init__(
        self, frames: int = 150, width: int = 640, height: int = 360, fps: int = 30
    ) -> None:
        super().__init__()
        self._pictures = [render_frame(i, width, height) for i in range(frames)]
        self._fps = fps
        self._start: float | None = None
        self._count = 0
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._count += 1
            wait = self._start + self._count / self._fps - now
            if wait > 0:
                await asyncio.sleep(wait)
        picture = self._pictures[self._count % len(self._pictures)]
        frame = av.VideoFrame(picture.width, picture.height, "yuv420p")
        for source, target in zip(picture.planes, frame.planes, strict=True):
            target.update(bytes(source))
        frame.pts = self._count * (VIDEO_CLOCK_RATE // self._fps)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        return frame


def _tone_samples(frequency: float, level_dbov: float, offset: int) -> bytes:
    amplitude = min(32767.0, 32767 * math.sqrt(2) * 10 ** (level_dbov / 20))
    samples = array(
        "h",
        (
            int(amplitude * math.sin(2 * math.pi * frequency * (offset + i) / AUDIO_RATE))
            for i in range(AUDIO_FRAME_SAMPLES)
        ),
    )
    return samples.tobytes()


@functools.cache
def opus_tone(
    frequency: float = 400.0, level_dbov: float = -20.0, frames: int = 50
) -> tuple[bytes, ...]:
    """A tone encoded once as Opus packets (20 ms each), to loop."""
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = AUDIO_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = AUDIO_TIME_BASE
    packets: list[bytes] = []
    for i in range(frames + 10):
        frame = _audio_frame(_tone_samples(frequency, level_dbov, i * AUDIO_FRAME_SAMPLES), i)
        packets += [bytes(p) for p in codec.encode(frame)]
    return tuple(packets[:frames])


def _audio_frame(samples: bytes, index: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_FRAME_SAMPLES)
    frame.planes[0].update(samples)
    frame.sample_rate = AUDIO_RATE
    frame.pts = index * AUDIO_FRAME_SAMPLES
    frame.time_base = AUDIO_TIME_BASE
    return frame


class ToneAudioTrack(MediaStreamTrack):
    """A tone at a set level, in real time.

    ``mode="packets"`` loops pre-encoded Opus (no encoding at all; aiortc then sends no
    audio-level header extension). ``mode="frames"`` hands raw frames to aiortc, which
    encodes them (cheap for audio) and sends the ``ssrc-audio-level`` extension, so the
    server sees `level_dbov`; `level_dbov` may be changed while running.
    `pause()` stops sending (what the page does for a muted microphone) until `resume()`.
    """

    kind = "audio"

    def __init__(
        self,
        *,
        frequency: float = 400.0,
        level_dbov: float = -20.0,
        mode: Literal["frames", "packets"] = "frames",
    ) -> None:
        super().__init__()
        self.frequency = frequency
        self.level_dbov = level_dbov
        self.mode = mode
        self._start: float | None = None
        self._count = 0
        self._cache: dict[tuple[float, int], bytes] = {}
        self._playing = asyncio.Event()
        self._playing.set()
        self._held = False
        self.frames_sent = 0

    @property
    def paused(self) -> bool:
        return not self._playing.is_set()

    def pause(self) -> None:
        self._playing.clear()

    def resume(self) -> None:
        self._playing.set()

    paced = False
    """Sent by a `scripts.synthpeer.pacing.Pacer` (``mode="packets"`` only): see
    `EncodedVideoTrack.paced`."""

    def next_due(self, now: float) -> float | None:
        """When the next packet is due (`None` while paused); the first call starts the
        clock at `now`, and so does the first after a pause (no burst to make up for it)."""
        if self.paused:
            self._held = True
            return None
        frame = AUDIO_FRAME_SAMPLES / AUDIO_RATE
        if self._start is None or self._held:
            self._held = False
            self._start = now - self._count * frame
            if self.frames_sent == 0:
                return now
        return self._start + (self._count + int(self.frames_sent > 0)) * frame

    def take_frame(self, now: float) -> tuple[int, int]:
        """The next packet's index in `opus_tone`'s loop and its pts."""
        if self.frames_sent:
            self._count += 1
        self.frames_sent += 1
        return self._count % len(opus_tone(self.frequency, self.level_dbov)), (
            self._count * AUDIO_FRAME_SAMPLES
        )

    async def recv(self) -> av.AudioFrame | av.Packet[Stream]:
        if self.readyState != "live":
            raise MediaStreamError
        if self.paced:
            await asyncio.get_running_loop().create_future()  # until the sender stops
        if self.paused:
            await self._playing.wait()
            # Restart the real-time schedule: a pause must not be made up for in a burst.
            self._start = time.monotonic() - self._count * AUDIO_FRAME_SAMPLES / AUDIO_RATE
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._count += 1
            wait = self._start + self._count * AUDIO_FRAME_SAMPLES / AUDIO_RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
        n = self._count
        self.frames_sent += 1
        if self.mode == "packets":
            loop = opus_tone(self.frequency, self.level_dbov)
            packet = av.Packet(loop[n % len(loop)])
            packet.pts = n * AUDIO_FRAME_SAMPLES
            packet.time_base = AUDIO_TIME_BASE
            return packet
        # a 400 Hz tone repeats every 120 samples: one 20 ms frame fits any offset
        period = max(1, round(AUDIO_RATE / self.frequency))
        key = (self.level_dbov, (n * AUDIO_FRAME_SAMPLES) % period)
        samples = self._cache.get(key)
        if samples is None:
            samples = _tone_samples(self.frequency, self.level_dbov, key[1])
            self._cache[key] = samples
        return _audio_frame(samples, n)

"""Publishing without aiortc's per-packet sender, for load.

aiortc's sender costs a task wake-up per frame per track and about 15 us of Python per
packet (an `RtpPacket`, header extensions, SRTP, four coroutine layers down to the
socket). A synthetic publisher sends a clip that is the same for everyone, so here each
clip is packetized once (VP8 payload descriptors included, the picture id patched per
stream), and every paced stream of the process is sent from one task on one clock: each
tick, the frames that are due, each in one synchronous call of the server's own direct
send path (`sfu.direct_send.DirectRtpSender`: RTP headers, SRTP protect and ``sendmsg``
in C where `sfu.native_send` is built; NACKs answered from its history with RTX; sender
reports per connection). The tracks keep their clocks and counters (`next_due`,
`take_frame`), so send logs, keyframe requests and frame counts mean what they did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass

import av
from aiortc import RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder

from scripts.synthpeer.media import (
    VIDEO_TIME_BASE,
    EncodedClip,
    EncodedVideoTrack,
    ToneAudioTrack,
    opus_tone,
)
from sfu.direct_send import DirectRtpSender
from sfu.payloads import RtpPayloads

logger = logging.getLogger(__name__)

TICK = 0.005
"""Seconds between the pacer's wake-ups (a frame leaves at most this late)."""
_PICTURE_ID_MASK = 0x7FFF


@dataclass(frozen=True)
class PacketizedClip:
    """Each frame of a clip as RTP payloads (VP8: descriptors with picture id 0)."""

    frames: tuple[tuple[bytes, ...], ...]
    keyframes: tuple[bool, ...]
    vp8: bool


_packetized: dict[int, tuple[object, PacketizedClip]] = {}


def packetize_video(clip: EncodedClip) -> PacketizedClip:
    """`clip`'s frames packetized as aiortc's VP8 sender would (once per clip)."""
    known = _packetized.get(id(clip))
    if known is not None and known[0] is clip:
        return known[1]
    encoder = Vp8Encoder()
    frames = []
    for data in clip.frames:
        encoder.picture_id = 0
        packet = av.Packet(data)
        packet.pts, packet.time_base = 0, VIDEO_TIME_BASE
        payloads, _ = encoder.pack(packet)
        frames.append(tuple(payloads))
    # A VP8 frame tag's lowest bit is 0 on a keyframe (RFC 6386 9.1).
    packetized = PacketizedClip(tuple(frames), tuple(not f[0] & 1 for f in clip.frames), True)
    _packetized[id(clip)] = (clip, packetized)
    return packetized


def packetize_audio(track: ToneAudioTrack) -> PacketizedClip:
    """The track's Opus loop: one payload per packet."""
    loop = opus_tone(track.frequency, track.level_dbov)
    return PacketizedClip(tuple((p,) for p in loop), (False,) * len(loop), False)


Source = EncodedVideoTrack | ToneAudioTrack


class PacedStream:
    """One published m-section whose frames the `Pacer` sends through a
    `DirectRtpSender` that takes over `sender` (create it before the sender starts)."""

    def __init__(self, sender: RTCRtpSender, source: Source, clip: PacketizedClip) -> None:
        self.source = source
        self.clip = clip
        self.rtp = DirectRtpSender(sender, source.kind, self._ready)
        self._running = False
        self._picture_id = 0
        self.frames_sent = 0
        self.repeat = 1
        """Times each frame is sent, each time under new sequence numbers: more than 1 is a
        publisher flooding at that many times its rate (`scripts.bench.flood`)."""
        source.paced = True

    def _ready(self) -> None:
        self._running = True

    def tick(self, now: float) -> None:
        """Send what is due at `now` (everything late, at once, as a track would)."""
        if not self._running:
            return
        if not self.rtp.ready:
            self._running = False
            return
        source = self.source
        due = source.next_due(now)
        while due is not None and due <= now:
            index, pts = source.take_frame(now)
            payloads = self._payloads(index)
            for _ in range(self.repeat):
                self.rtp.send_frame(payloads, pts, self.clip.keyframes[index])
            self.frames_sent += 1
            due = source.next_due(now)

    def _payloads(self, index: int) -> RtpPayloads:
        items = self.clip.frames[index]
        if not self.clip.vp8:
            return RtpPayloads(items)
        picture_id = (0x8000 | self._picture_id).to_bytes(2, "big")
        self._picture_id = (self._picture_id + 1) & _PICTURE_ID_MASK
        return RtpPayloads([item[:2] + picture_id + item[4:] for item in items])

    def close(self) -> None:
        self._running = False
        self.rtp.close()


class Pacer:
    """Sends every `PacedStream` of an event loop from one task, every `TICK`."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self._streams: list[PacedStream] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Pacer:
        """The pacer of `loop` (made on first use)."""
        pacer = cls._by_loop.get(loop)
        if pacer is None:
            pacer = cls._by_loop[loop] = cls()
        return pacer

    def add(self, stream: PacedStream) -> None:
        self._streams.append(stream)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pacer")

    def remove(self, stream: PacedStream) -> None:
        with contextlib.suppress(ValueError):
            self._streams.remove(stream)

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def streams(self) -> tuple[PacedStream, ...]:
        """The streams being sent."""
        return tuple(self._streams)

    async def _run(self) -> None:
        streams = self._streams
        while streams:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for stream in tuple(streams):
                try:
                    stream.tick(now)
                except Exception:  # one broken stream must not stop the others
                    logger.exception("paced stream failed")
                    self.remove(stream)
        self._task = None

"""A published track: encoded frames in from the publisher, out to every consumer."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeAlias

import av
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from av.stream import Stream

from sfu import aiortc_adapter, vp8
from sfu.assembler import AudioFramePassthrough, Packet, VideoFrameAssembler
from sfu.codecs import ForwardCodec
from sfu.config import MediaConfig
from sfu.counters import ProducerCounters
from sfu.events import SafeListener
from sfu.ids import (
    DEFAULT_SOURCE,
    TOP_LAYER,
    AppData,
    ConsumerId,
    MediaKind,
    ParticipantId,
    ProducerId,
    TrackSource,
)
from sfu.keyframes import KeyframeRequester
from sfu.payloads import RtpPayloads
from sfu.stats import ProducerStats

if TYPE_CHECKING:
    from sfu.consumer import Consumer

logger = logging.getLogger(__name__)

_RATE_WINDOW = 1.0  # seconds over which `Producer.bitrate` is measured
_MAX_TEMPORAL_LAYERS = 4  # what the VP8 descriptor's 2-bit TID can name
_TEMPORAL_MEMORY = 3.0  # seconds a temporal layer counts as sent after its last frame


class MediaFrame:
    """One encoded frame as handed to consumers: shared by all of them, never copied.

    `payloads` are the frame's RTP payloads, packetized once for every consumer on the
    direct send path (`None` on the aiortc path, where each sender packetizes `packet`).
    `temporal` is its temporal layer (0 without any); `picture_id` the VP8 picture id in
    `payloads` (None for other codecs and on the aiortc path).
    """

    __slots__ = (
        "_renumbered",
        "keyframe",
        "packet",
        "payloads",
        "picture_id",
        "producer",
        "pts",
        "temporal",
    )

    def __init__(
        self,
        packet: av.Packet[Stream],
        pts: int,
        keyframe: bool,
        payloads: RtpPayloads | None = None,
        producer: Producer | None = None,
        temporal: int = 0,
    ) -> None:
        self.packet = packet
        self.pts = pts
        self.keyframe = keyframe
        self.payloads = payloads
        self.producer = producer
        """The layer it comes from (a consumer of a layered source forwards one)."""
        self.temporal = temporal
        self.picture_id: int | None = None
        if payloads is not None and producer is not None and producer.codec.name == "VP8":
            self.picture_id = vp8.picture_id(payloads.items[0])
        self._renumbered: dict[int, RtpPayloads] | None = None

    def payloads_with_picture_id(self, new_id: int) -> RtpPayloads:
        """`payloads` carrying picture id `new_id` (made once per id, for every consumer
        that needs the same one)."""
        assert self.payloads is not None
        cache = self._renumbered
        if cache is None:
            cache = self._renumbered = {}
        payloads = cache.get(new_id)
        if payloads is None:
            payloads = cache[new_id] = RtpPayloads(
                [vp8.with_picture_id(item, new_id) for item in self.payloads.items]
            )
        return payloads


FrameSink: TypeAlias = Callable[[MediaFrame], None]
"""Called on the event loop with every frame consumers get (e.g. `sfu.recorder.Recorder`).
It must return at once: hand the frame to another thread rather than doing I/O."""


class Producer:
    """A track one participant publishes.

    Its publisher's RTP packets are assembled into frames (`sfu.assembler`) without any
    decoding, wrapped once as `av.Packet` and handed to each `Consumer`. It also owns the
    keyframe policy towards its publisher and reports audio levels.

    `source` says what it carries (`TrackSource`); a source published in several tracks
    (a camera's layers) has one producer per `layer` (0 the lowest), and one consumer per
    subscriber forwards one of them at a time. `pause()` stops forwarding it to everyone
    (a muted microphone), whatever the publisher still sends; audio packets of digital
    silence are never forwarded.
    """

    def __init__(
        self,
        *,
        producer_id: ProducerId,
        participant_id: ParticipantId,
        stream_id: str,
        kind: MediaKind,
        codec: ForwardCodec,
        receiver: RTCRtpReceiver,
        config: MediaConfig,
        listener: SafeListener,
        on_close: Callable[[Producer], None],
        app_data: AppData | None = None,
        source: TrackSource | None = None,
        layer: int = TOP_LAYER,
    ) -> None:
        self.id = producer_id
        self.participant_id = participant_id
        self.stream_id = stream_id
        self.kind = kind
        self.source: TrackSource = source or DEFAULT_SOURCE[kind]
        self.layer = layer
        self.codec = codec
        self.app_data: AppData = dict(app_data or {})
        self._receiver = receiver
        self._listener = listener
        self._on_close = on_close
        self._closed = False
        self._consumers: dict[ConsumerId, Consumer] = {}
        self._fanout: tuple[Consumer, ...] = ()
        self._sinks: tuple[FrameSink, ...] = ()
        self._time_base = fractions.Fraction(1, codec.clock_rate)
        self._ssrc: int | None = None
        self._needs_keyframe = False
        self._paused = False
        self._pli_tasks: set[asyncio.Task[None]] = set()
        # One receiver can carry producers in turn (renegotiation): count from here on.
        self._nacks = aiortc_adapter.nack_counter(receiver)
        self._nacks_start = self._nacks.sequence_numbers
        self._nacks_final: int | None = None
        loop = asyncio.get_running_loop()
        self._keyframes = KeyframeRequester(
            self._send_pli, config.keyframe_request_interval, time.monotonic, loop.call_later
        )
        self._assembler: VideoFrameAssembler | AudioFramePassthrough
        self._video: VideoFrameAssembler | None = None
        if kind == "video":
            self._assembler = self._video = VideoFrameAssembler(
                codec.name, self._on_frame, self._on_loss, config.max_frame_wait
            )
        else:
            self._assembler = AudioFramePassthrough(
                self._on_frame, self._on_level, self._on_silence
            )
        self._packer: Encoder | None = None
        if config.send_path == "direct" and kind == "video":
            self._packer = get_encoder(
                RTCRtpCodecParameters(
                    mimeType=codec.capability.mimeType, clockRate=codec.clock_rate
                )
            )
        self._direct = config.send_path == "direct"
        self._level_interval = config.audio_level_interval
        self._level_window_start = 0.0
        self._level_min = 127
        self._level_voice = False
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.frames_withheld = 0
        """Frames received while paused, or digital silence: forwarded to nobody."""
        self.last_frame_at: float | None = None
        """`time.monotonic()` of the last frame; camera-on / mic-on detection."""
        self._rate_since = time.monotonic()
        self._rate_bytes = 0
        self._rate_frames = 0
        self._bitrate = 0.0
        self._frame_rate = 0.0
        # Bytes and frames per temporal layer over the rate window, and what share of
        # the rate and the frame rate each number of temporal layers made in the last.
        self._temporal_bytes = [0] * _MAX_TEMPORAL_LAYERS
        self._temporal_frames = [0] * _MAX_TEMPORAL_LAYERS
        self._temporal_shares: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
        self._temporal_seen_at = [float("-inf")] * _MAX_TEMPORAL_LAYERS

    def __repr__(self) -> str:
        return (
            f"Producer({self.id}, {self.source}/{self.layer} {self.codec.name}, "
            f"participant={self.participant_id})"
        )

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Forward nothing of this track to anyone (e.g. its microphone is muted), whatever
        the publisher keeps sending. Idempotent."""
        self._paused = True

    def resume(self) -> None:
        """Forward again; video restarts at the next keyframe (one is requested).
        Idempotent."""
        if not self._paused:
            return
        self._paused = False
        if self.kind == "video":
            self._needs_keyframe = True
            self.request_keyframe()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def consumers(self) -> Mapping[ConsumerId, Consumer]:
        return MappingProxyType(self._consumers)

    def is_flowing(self, max_age: float = 1.0) -> bool:
        """True when a frame arrived within `max_age` seconds (e.g. the camera is on)."""
        last = self.last_frame_at
        return last is not None and time.monotonic() - last <= max_age

    @property
    def bitrate(self) -> float:
        """What the publisher sends, in bit/s of payload (over the last second or two;
        0 once frames stopped)."""
        last = self.last_frame_at
        if last is None or time.monotonic() - last > 2 * _RATE_WINDOW:
            return 0.0
        return self._bitrate

    @property
    def frame_rate(self) -> float:
        """Frames per second the publisher sends (over the last second; 0 once frames
        stopped)."""
        last = self.last_frame_at
        if last is None or time.monotonic() - last > 2 * _RATE_WINDOW:
            return 0.0
        return self._frame_rate

    @property
    def temporal_layers(self) -> int:
        """How many temporal layers the publisher sends (1: none), as last measured."""
        return len(self._temporal_shares)

    def temporal_share(self, max_layer: int) -> tuple[float, float]:
        """The share of the bit rate and of the frame rate that temporal layers 0 to
        `max_layer` make (1.0 each at or above the top layer)."""
        shares = self._temporal_shares
        return shares[min(max(max_layer, 0), len(shares) - 1)]

    def _measure_rate(self, now: float) -> None:
        sample = 8 * (self.bytes - self._rate_bytes) / (now - self._rate_since)
        # A fresh sample counts fully after a quiet spell, else half (keyframes are bursts).
        fresh = self._bitrate == 0.0 or now - self._rate_since > 2 * _RATE_WINDOW
        self._bitrate = sample if fresh else (self._bitrate + sample) / 2
        self._frame_rate = (self.frames - self._rate_frames) / (now - self._rate_since)
        self._rate_since = now
        self._rate_bytes = self.bytes
        self._rate_frames = self.frames
        self._measure_temporal_shares(now)

    def _measure_temporal_shares(self, now: float) -> None:
        sizes, counts = self._temporal_bytes, self._temporal_frames
        total_bytes, total_frames = sum(sizes), sum(counts)
        if not total_frames:
            return
        seen = self._temporal_seen_at
        for layer, count in enumerate(counts):
            if count:
                seen[layer] = now
        # A slow publisher (a screen share at 5 fps) may leave a layer out of one window.
        top = max(layer for layer, at in enumerate(seen) if now - at <= _TEMPORAL_MEMORY)
        shares = []
        cumulative_bytes = cumulative_frames = 0
        for layer in range(top + 1):
            cumulative_bytes += sizes[layer]
            cumulative_frames += counts[layer]
            shares.append((cumulative_bytes / total_bytes, cumulative_frames / total_frames))
        self._temporal_shares = tuple(shares)
        self._temporal_bytes = [0] * _MAX_TEMPORAL_LAYERS
        self._temporal_frames = [0] * _MAX_TEMPORAL_LAYERS

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (coalesced and rate-limited)."""
        if self.kind == "video":
            self._keyframes.request()

    def close(self) -> None:
        """Stop forwarding; closes every consumer of this producer (a consumer of a
        layered source lives on while it has another layer). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._nacks_final = self.nacks_sent
        self._keyframes.close()
        for task in self._pli_tasks:
            task.cancel()
        for consumer in list(self._consumers.values()):
            consumer._layer_closed(self)
        self._consumers.clear()
        self._fanout = ()
        self._on_close(self)
        self._listener.on_producer_removed(self)

    @property
    def nacks_sent(self) -> int:
        """Sequence numbers NACKed to the publisher for this producer."""
        if self._nacks_final is not None:
            return self._nacks_final
        return self._nacks.sequence_numbers - self._nacks_start

    def add_counters(self, into: ProducerCounters) -> None:
        """Add this producer's counters (those of `stats()`) to `into`; allocates nothing."""
        assembler = self._assembler
        keyframes = self._keyframes
        into.packets += assembler.packets
        into.bytes += self.bytes
        into.frames += self.frames
        into.keyframes += self.keyframes
        into.late_packets += assembler.late_packets
        if isinstance(assembler, VideoFrameAssembler):
            into.skipped_frames += assembler.skipped
        into.keyframe_requests += keyframes.requests
        into.plis_sent += keyframes.sent
        into.nacks_sent += self.nacks_sent
        into.frames_withheld += self.frames_withheld

    def stats(self) -> ProducerStats:
        last = self.last_frame_at
        return ProducerStats(
            producer_id=self.id,
            participant_id=self.participant_id,
            kind=self.kind,
            source=self.source,
            layer=self.layer,
            paused=self._paused,
            bitrate=round(self.bitrate),
            frames_withheld=self.frames_withheld,
            codec=self.codec.name,
            packets=self._assembler.packets,
            frames=self.frames,
            keyframes=self.keyframes,
            bytes=self.bytes,
            late_packets=self._assembler.late_packets,
            skipped_frames=getattr(self._assembler, "skipped", 0),
            keyframe_requests=self._keyframes.requests,
            plis_sent=self._keyframes.sent,
            consumers=len(self._consumers),
            last_frame_age=None if last is None else time.monotonic() - last,
            nacks_sent=self.nacks_sent,
        )

    # ----------------------------------------------------------------- media path

    def on_packet(self, packet: Packet, data: bytes) -> None:
        """One RTP packet from the publisher (RTX unwrapped, payload depayloaded)."""
        if self._closed:
            return
        self._ssrc = packet.ssrc
        self._assembler.push(packet, data)

    def _on_frame(self, data: bytes, pts: int, keyframe: bool) -> None:
        self.frames += 1
        self.bytes += len(data)
        now = self.last_frame_at = time.monotonic()
        if now - self._rate_since >= _RATE_WINDOW:
            self._measure_rate(now)
        if keyframe:
            self.keyframes += 1
            self._needs_keyframe = False
            self._keyframes.on_keyframe()
        elif self._needs_keyframe:
            return
        if self._paused:
            self.frames_withheld += 1
            return
        temporal = 0 if self._video is None else self._video.frame_temporal
        self._temporal_bytes[temporal] += len(data)
        self._temporal_frames[temporal] += 1
        packet = av.Packet(data)
        packet.time_base = self._time_base
        packet.pts = pts
        payloads = None
        if self._packer is not None:
            payloads = RtpPayloads(self._packer.pack(packet)[0])
        elif self._direct:
            payloads = RtpPayloads((data,))  # an Opus frame is one RTP payload
        frame = MediaFrame(packet, pts, keyframe, payloads, self, temporal)
        for consumer in self._fanout:
            consumer._deliver(frame)
        for sink in self._sinks:
            sink(frame)

    def _on_silence(self) -> None:
        self.last_frame_at = time.monotonic()  # the microphone is on, only silent
        self.frames_withheld += 1

    def _on_loss(self) -> None:
        # Frames are missing for good: what follows cannot be decoded until a keyframe.
        self._needs_keyframe = True
        self._keyframes.request()

    def _on_level(self, level: int, voice: bool) -> None:
        now = time.monotonic()
        if level < self._level_min:
            self._level_min = level
        self._level_voice = self._level_voice or voice
        if now - self._level_window_start >= self._level_interval:
            self._listener.on_audio_level(self, -self._level_min, self._level_voice)
            self._level_window_start = now
            self._level_min = 127
            self._level_voice = False

    def _send_pli(self) -> bool:
        if self._ssrc is None or self._closed:
            return False
        task = asyncio.get_running_loop().create_task(
            aiortc_adapter.send_pli(self._receiver, self._ssrc)
        )
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)
        self._listener.on_keyframe_requested(self)
        return True

    # ----------------------------------------------------------------- sinks

    def add_sink(self, sink: FrameSink) -> None:
        """Also hand every forwarded frame to `sink` (after the consumers)."""
        self._sinks = (*self._sinks, sink)

    def remove_sink(self, sink: FrameSink) -> None:
        """Stop calling `sink`; unknown sinks are ignored."""
        self._sinks = tuple(s for s in self._sinks if s is not sink)

    # ----------------------------------------------------------------- consumers

    def _add_consumer(self, consumer: Consumer) -> None:
        self._consumers[consumer.id] = consumer
        self._fanout = tuple(self._consumers.values())

    def _remove_consumer(self, consumer: Consumer) -> None:
        if self._consumers.pop(consumer.id, None) is not None:
            self._fanout = tuple(self._consumers.values())

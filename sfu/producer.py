"""A published track: encoded frames in from the publisher, out to every consumer."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, TypeAlias

import av
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.codecs import depayload, get_encoder
from aiortc.codecs.base import Encoder
from av.stream import Stream

from sfu import aiortc_adapter
from sfu.assembler import AudioFramePassthrough, Packet, VideoFrameAssembler
from sfu.codecs import ForwardCodec
from sfu.config import MediaConfig
from sfu.counters import ProducerCounters
from sfu.events import SafeListener
from sfu.fanout import Fanout, FanoutReport
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
from sfu.media_frame import MediaFrame
from sfu.native_receive import Tally
from sfu.payloads import RtpPayloads
from sfu.publish_rates import PublishRates
from sfu.stats import ProducerStats

if TYPE_CHECKING:
    from sfu.consumer import Consumer

logger = logging.getLogger(__name__)


class ReceiveCounts(Protocol):
    """Packet counters of a track received natively (`sfu.aiortc_adapter`)."""

    def read(self) -> tuple[int, int, int]:
        """(packets, late packets, skipped frames) so far."""
        ...

    def media_ssrc(self) -> int | None:
        """The SSRC the track's media arrives with (the newest), None before any."""
        ...

    def forward_directly(
        self, fanout: Callable[..., object] | None, legs: tuple[object, ...] = (), gso: bool = False
    ) -> None:
        """Hand frames straight to the C fan-out (`fanout` None: to the producer)."""
        ...

    def sync(self) -> None:
        """Deliver what the direct hand-off did so far (`Producer.on_native_tally`)."""
        ...


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
        """The consumers its frames go to in Python: those not in `_native`."""
        self._native = Fanout()
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
        self._codec_parameters = RTCRtpCodecParameters(
            mimeType=codec.capability.mimeType, clockRate=codec.clock_rate
        )
        self._native_counts: ReceiveCounts | None = None
        self._handed_off = False
        """Frames go from the native receive path to the C fan-out without Python."""
        self._may_hand_off = config.native_handoff
        self._counts_final: tuple[int, int, int] | None = None
        self._native_base = (0, 0, 0)
        self._level_interval = config.audio_level_interval
        self._level_window_start = 0.0
        self._level_min = 127
        self._level_voice = False
        self._frames = 0
        self._keyframe_count = 0
        self._bytes = 0
        self.frames_withheld = 0
        """Frames received while paused, or digital silence: forwarded to nobody."""
        self._last_frame_at: float | None = None
        self._rates = PublishRates(time.monotonic())

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
        self._update_direct()

    def resume(self) -> None:
        """Forward again; video restarts at the next keyframe (one is requested).
        Idempotent."""
        if not self._paused:
            return
        self._paused = False
        if self.kind == "video":
            self._needs_keyframe = True
            self.request_keyframe()
        self._update_direct()

    # The direct hand-off counts in C: these read its tally first, so they are never stale.
    @property
    def frames(self) -> int:
        self._sync_tally()
        return self._frames

    @property
    def keyframes(self) -> int:
        self._sync_tally()
        return self._keyframe_count

    @property
    def last_frame_at(self) -> float | None:
        """`time.monotonic()` of the last frame; camera-on / mic-on detection."""
        self._sync_tally()
        return self._last_frame_at

    @property
    def handed_off(self) -> bool:
        """True while the native receive path hands this track's frames straight to the
        C fan-out (all its consumers are on it, no sink; Python sees keyframes only)."""
        return self._handed_off

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
        return self._rates.bitrate(self.last_frame_at, time.monotonic())

    @property
    def frame_rate(self) -> float:
        """Frames per second the publisher sends (over the last second; 0 once frames
        stopped)."""
        return self._rates.frame_rate(self.last_frame_at, time.monotonic())

    @property
    def temporal_layers(self) -> int:
        """How many temporal layers the publisher sends (1: none), as last measured."""
        return self._rates.temporal_layers

    def temporal_share(self, max_layer: int) -> tuple[float, float]:
        """The share of the bit rate and of the frame rate that temporal layers 0 to
        `max_layer` make (1.0 each at or above the top layer)."""
        return self._rates.temporal_share(max_layer)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (coalesced and rate-limited)."""
        if self.kind == "video":
            self._keyframes.request()

    def close(self) -> None:
        """Stop forwarding; closes every consumer of this producer (a consumer of a
        layered source lives on while it has another layer). Idempotent."""
        if self._closed:
            return
        if self._handed_off and self._native_counts is not None:
            self._native_counts.forward_directly(None)  # what it tallied is counted first
            self._handed_off = False
        self._closed = True
        self._nacks_final = self.nacks_sent
        self._counts_final = self._receive_counts()  # the native receiver counts on
        self._keyframes.close()
        for task in self._pli_tasks:
            task.cancel()
        for consumer in list(self._consumers.values()):
            consumer._layer_closed(self)
        self._consumers.clear()
        self._fanout = ()
        self._native = Fanout()
        self._on_close(self)
        self._listener.on_producer_removed(self)

    @property
    def nacks_sent(self) -> int:
        """Sequence numbers NACKed to the publisher for this producer."""
        if self._nacks_final is not None:
            return self._nacks_final
        return self._nacks.sequence_numbers - self._nacks_start

    def add_counters(self, into: ProducerCounters) -> None:
        """Add this producer's counters (those of `stats()`) to `into`."""
        self._sync_tally()
        packets, late, skipped = self._receive_counts()
        keyframes = self._keyframes
        into.packets += packets
        into.bytes += self._bytes
        into.frames += self._frames
        into.keyframes += self._keyframe_count
        into.late_packets += late
        into.skipped_frames += skipped
        into.keyframe_requests += keyframes.requests
        into.plis_sent += keyframes.sent
        into.nacks_sent += self.nacks_sent
        into.frames_withheld += self.frames_withheld

    def stats(self) -> ProducerStats:
        self._sync_tally()
        last = self._last_frame_at
        packets, late, skipped = self._receive_counts()
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
            packets=packets,
            frames=self._frames,
            keyframes=self._keyframe_count,
            bytes=self._bytes,
            late_packets=late,
            skipped_frames=skipped,
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
        temporal = 0 if self._video is None else self._video.frame_temporal
        if not self._admit(len(data), keyframe, temporal):
            return
        packet = av.Packet(data)
        packet.time_base = self._time_base
        packet.pts = pts
        payloads = None
        if self._packer is not None:
            payloads = RtpPayloads(self._packer.pack(packet)[0])
        elif self._direct:
            payloads = RtpPayloads((data,))  # an Opus frame is one RTP payload
        self._forward(MediaFrame(packet, pts, keyframe, payloads, self, temporal))

    def _admit(self, size: int, keyframe: bool, temporal: int) -> bool:
        """Count a received frame; True when it is forwarded."""
        self._frames += 1
        self._bytes += size
        now = self._last_frame_at = time.monotonic()
        self._rates.measure(now, self._frames, self._bytes)
        if keyframe:
            self._keyframe_count += 1
            if self._needs_keyframe:
                self._needs_keyframe = False
                self._update_direct()
            self._keyframes.on_keyframe()
        elif self._needs_keyframe:
            return False
        if self._paused:
            self.frames_withheld += 1
            return False
        self._rates.count(temporal, size)
        return True

    def _forward(self, frame: MediaFrame) -> None:
        native = self._native
        if native.legs:
            native.send(frame)
        for consumer in self._fanout:
            consumer._deliver(frame)
        for sink in self._sinks:
            sink(frame)

    # ----------------------------------------------------------------- native receive

    def on_native_frame(
        self, payloads: tuple[bytes, ...], pts: int, keyframe: bool, temporal: int, sync: bool
    ) -> None:
        """A frame from the native receive path: its RTP payloads as the publisher sent
        them (forwarded as they are; depayloaded only for who needs the frame)."""
        if self._closed:
            return
        if self._video is not None:
            self._video.frame_temporal, self._video.frame_layer_sync = temporal, sync
        forwarded = RtpPayloads(payloads)
        if not self._admit(forwarded.size, keyframe, temporal):
            return
        self._forward(MediaFrame(None, pts, keyframe, forwarded, self, temporal))

    def on_native_report(
        self,
        report: FanoutReport,
        legs: tuple[object, ...],
        payloads: tuple[bytes, ...],
        pts: int,
        keyframe: bool,
        temporal: int,
        sync: bool,
    ) -> None:
        """A frame the native receive path handed straight to the C fan-out, which left
        `report` (about `legs`) to the Python path."""
        if self._closed:
            return
        if self._video is not None:
            self._video.frame_temporal, self._video.frame_layer_sync = temporal, sync
        frame = MediaFrame(None, pts, keyframe, RtpPayloads(payloads), self, temporal)
        frame.route_check = True  # what most reports are for; a spare check costs little
        self._native.handle_report(report, legs, frame, self._consumers.values())
        self._update_direct()  # e.g. GSO turned off

    def on_native_tally(self, tally: Tally) -> None:
        """What the direct hand-off did since the last tally: counted as `_admit`
        and the audio-level and silence handlers would have."""
        if self._closed:
            return
        if tally.frames:
            self._frames += tally.frames
            self._keyframe_count += tally.keyframes
            self._bytes += tally.bytes
            self._last_frame_at = max(self._last_frame_at or 0.0, tally.last_frame)
            self._rates.count_many(tally.temporal_frames, tally.temporal_bytes)
            self._rates.measure(time.monotonic(), self._frames, self._bytes)
        if tally.level_min >= 0:
            self._on_level(tally.level_min, tally.voice)
        if tally.silent:
            self.frames_withheld += tally.silent
            self._last_frame_at = max(self._last_frame_at or 0.0, tally.last_silent)

    def on_native_level(self, level: int, voice: bool) -> None:
        if not self._closed:
            self._on_level(level, voice)

    def on_native_silence(self) -> None:
        if not self._closed:
            self._on_silence()

    def on_native_loss(self) -> None:
        if not self._closed:
            self._on_loss()

    def count_natively(self, counts: ReceiveCounts) -> None:
        """Report packet counters from `counts` (the native receive path) from now on."""
        self._native_counts = counts
        self._native_base = counts.read()
        self._handed_off = False
        self._update_direct()

    def _update_direct(self) -> None:
        """Let the native receive path hand frames straight to the C fan-out while
        nothing but its members wants them (none at all: it only counts them): no consumer
        on the Python path that forwards this layer, no sink, not paused, not waiting for
        a keyframe (keyframes always come through Python)."""
        counts = self._native_counts
        if counts is None or not self._may_hand_off:
            return
        native = self._native
        direct = (
            not self._sinks
            and not self._paused
            and not self._needs_keyframe
            and not self._closed
            and not any(consumer.takes_frames_from(self) for consumer in self._fanout)
        )
        if direct:
            counts.forward_directly(*native.hand_off())
        elif self._handed_off:
            counts.forward_directly(None)
        self._handed_off = direct

    def _sync_tally(self) -> None:
        if self._handed_off and self._native_counts is not None:
            self._native_counts.sync()

    def _receive_counts(self) -> tuple[int, int, int]:
        """(packets, late packets, skipped frames) received for this producer."""
        if self._counts_final is not None:
            return self._counts_final
        native = self._native_counts
        if native is not None:
            packets, late, skipped = native.read()
            base = self._native_base
            return packets - base[0], late - base[1], skipped - base[2]
        assembler = self._assembler
        return assembler.packets, assembler.late_packets, getattr(assembler, "skipped", 0)

    def _depayloaded(self, payloads: RtpPayloads, pts: int) -> av.Packet[Stream]:
        parts = []
        for payload in payloads.items:
            try:
                parts.append(depayload(self._codec_parameters, payload))
            except ValueError:
                continue  # what aiortc's receiver drops
        packet = av.Packet(b"".join(parts))
        packet.time_base = self._time_base
        packet.pts = pts
        return packet

    def _on_silence(self) -> None:
        self._last_frame_at = time.monotonic()  # the microphone is on, only silent
        self.frames_withheld += 1

    def _on_loss(self) -> None:
        # Frames are missing for good: what follows cannot be decoded until a keyframe.
        self._needs_keyframe = True
        self._update_direct()
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
        if self._native_counts is not None:
            self._ssrc = self._native_counts.media_ssrc() or self._ssrc
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
        self._update_direct()

    def remove_sink(self, sink: FrameSink) -> None:
        """Stop calling `sink`; unknown sinks are ignored."""
        self._sinks = tuple(s for s in self._sinks if s is not sink)
        self._update_direct()

    # ----------------------------------------------------------------- consumers

    def _add_consumer(self, consumer: Consumer) -> None:
        self._consumers[consumer.id] = consumer
        self._update_fanout()

    def _remove_consumer(self, consumer: Consumer) -> None:
        if self._consumers.pop(consumer.id, None) is not None:
            self._native.discard(consumer)
            self._update_fanout()

    def _fanout_add(self, consumer: Consumer) -> None:
        """Send to `consumer` (in steady state) through the C fan-out."""
        if consumer.id in self._consumers:
            self._native.add(consumer)
            self._update_fanout()

    def _fanout_remove(self, consumer: Consumer) -> None:
        """Send to `consumer` in Python again."""
        if self._native.discard(consumer):
            self._update_fanout()

    def _consumer_changed(self) -> None:
        """One of its consumers changed what it forwards (`Consumer.takes_frames_from`)."""
        self._update_direct()

    def _update_fanout(self) -> None:
        native = self._native
        self._fanout = tuple(c for c in self._consumers.values() if c not in native)
        self._update_direct()

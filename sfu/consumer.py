"""A forwarded track towards one subscriber, and the aiortc track that carries it.

`ForwardingTrack.recv()` returns `av.Packet`s, so the subscriber's `RTCRtpSender` only
packetizes them (and keeps doing sender reports, NACK history and RTX); nothing is
encoded or decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.stream import Stream

from sfu import vp8
from sfu.aiortc_adapter import SenderCounters
from sfu.counters import ConsumerCounters
from sfu.direct_send import DirectRtpSender
from sfu.errors import Closed
from sfu.ids import AppData, ConsumerId, MediaKind, ParticipantId, TrackSource
from sfu.media_frame import MediaFrame
from sfu.producer import Producer
from sfu.rtp_rewriter import PTS_STEP, PtsRebaser
from sfu.stats import NO_LINK, NO_SENDS, ConsumerStats, LinkQuality, SendCounts
from sfu.streams import LegState, new_leg

ALL_TEMPORAL_LAYERS = 3
"""The highest temporal layer a VP8 descriptor can name: forward everything."""


class Output(Protocol):
    """Where a consumer's frames go: a `ForwardingTrack` or a `DirectOutput`."""

    @property
    def ready(self) -> bool: ...

    def push(self, frame: MediaFrame) -> bool: ...

    def detach(self) -> None: ...

    def switch_source(self, gap: int) -> None:
        """The next frame comes from another source, `gap` clock ticks after the last."""
        ...

    def counts(self) -> SendCounts:
        """Everything its m-section's sender sent so far (for all consumers it carried)."""
        ...

    def link(self) -> LinkQuality:
        """What the subscriber's latest receiver report says about the stream."""
        ...


class DirectOutput:
    """Sends frames through a `DirectRtpSender` (the ``direct`` send path). The next
    picture id is the sender's (`DirectRtpSender.next_picture_id`): the C fan-out
    (`sfu.fanout`) keeps it too."""

    __slots__ = ("rtp",)

    def __init__(self, rtp: DirectRtpSender) -> None:
        self.rtp = rtp

    @property
    def ready(self) -> bool:
        return self.rtp.ready

    def push(self, frame: MediaFrame) -> bool:
        payloads = frame.payloads
        assert payloads is not None
        picture_id = frame.picture_id
        rtp = self.rtp
        if picture_id is None:
            return rtp.send_frame(payloads, frame.pts, frame.keyframe, frame.route_check)
        # Consecutive picture ids whatever was skipped or switched (see `sfu.vp8`).
        next_id = rtp.next_picture_id
        if next_id is None:
            next_id = picture_id
        elif next_id != picture_id:
            payloads = frame.payloads_with_picture_id(next_id)
        sent = rtp.send_frame(payloads, frame.pts, frame.keyframe, frame.route_check)
        if sent:
            rtp.next_picture_id = (next_id + 1) & vp8.PICTURE_ID_MASK
        return sent

    def detach(self) -> None:
        self.rtp.detach()

    def switch_source(self, gap: int) -> None:
        self.rtp.detach(gap)

    def counts(self) -> SendCounts:
        return self.rtp.counts()

    def link(self) -> LinkQuality:
        return self.rtp.link_quality()


class ForwardingTrack(MediaStreamTrack):
    """The track behind one subscriber m-section; consumers attach to it in turn.

    When an m-section is reused for another producer, timestamps continue where the
    previous one stopped, so the subscriber sees one continuous RTP stream.
    """

    def __init__(self, kind: MediaKind, max_frames: int) -> None:
        super().__init__()
        self.kind = kind
        self._frames: deque[tuple[MediaFrame, int]] = deque()
        self._max_frames = max_frames
        self._waiter: asyncio.Future[None] | None = None
        self._pts = PtsRebaser(PTS_STEP[kind])
        self.sender_counters: SenderCounters | None = None
        """Set by the subscription on the ``aiortc`` send path."""

    @property
    def ready(self) -> bool:
        return True

    def counts(self) -> SendCounts:
        counters = self.sender_counters
        return NO_SENDS if counters is None else counters.counts()

    def link(self) -> LinkQuality:
        return NO_LINK  # aiortc's sender keeps it in getStats(); not read on this path

    def push(self, frame: MediaFrame) -> bool:
        """Queue a frame for the sender; False (and the queue emptied) on overflow."""
        frames = self._frames
        if len(frames) >= self._max_frames:
            frames.clear()
            return False
        frames.append((frame, self._pts.rebase(frame.pts)))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    def detach(self) -> None:
        """Forget queued frames; the next frame pushed starts a new source."""
        self._frames.clear()
        self._pts.switch_source()

    def switch_source(self, gap: int) -> None:
        self._pts.switch_source(gap)

    async def recv(self) -> av.Packet[Stream]:
        frames = self._frames
        while not frames:
            if self.readyState != "live":
                raise MediaStreamError
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
        frame, pts = frames.popleft()
        packet = frame.packet
        # One av.Packet is shared by every consumer of a frame. aiortc's sender reads its
        # pts synchronously right after recv() returns (Encoder.pack), before any other
        # task runs, so each consumer can stamp its own pts here (canary-tested).
        packet.pts = pts
        return packet

    def stop(self) -> None:
        super().stop()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Consumer:
    """One source of a publisher forwarded to one subscriber (mediasoup's Consumer).

    Made by `Router.consume`. It starts once the subscriber's answer includes its
    m-section: a keyframe is requested and everything before the first keyframe is
    dropped. `pause()` stops forwarding to this subscriber without renegotiating (the
    m-section stays); `resume()` requests a keyframe and forwards again from the next
    one. Closing it (or its last producer) removes its m-section from the subscriber's
    next offer.

    A source published in layers (a camera's ``high`` and ``low`` tracks, one `Producer`
    each) is one consumer and one m-section: it forwards one layer at a time, the
    preferred one (`set_preferred_layer`) or the best below it. A switch happens only
    at a keyframe of the new layer (requested at once); until it comes the old layer
    goes on, so the subscriber never waits on a picture it cannot decode. Sequence
    numbers, timestamps and the SSRC stay those of one continuous stream.

    In steady state (forwarding its producer, no switch pending, not paused, its sender
    on a native route) its producer's frames reach it through the C fan-out
    (`sfu.fanout`); `_sync_fanout` moves it in and out at every change of that.
    """

    def __init__(
        self,
        *,
        consumer_id: ConsumerId,
        producer: Producer,
        participant_id: ParticipantId,
        on_close: Callable[[Consumer], None],
        paused: bool = False,
        app_data: AppData | None = None,
    ) -> None:
        self.id = consumer_id
        self.participant_id = participant_id
        self.publisher_id: ParticipantId = producer.participant_id
        self.source: TrackSource = producer.source
        self.kind: MediaKind = producer.kind
        self.codec = producer.codec
        self.stream_id = producer.stream_id
        self.app_data: AppData = dict(app_data or {})
        self._on_close = on_close
        self._output: Output | None = None
        self._layers: dict[int, Producer] = {}
        self._preferred: int | None = None
        self._target: Producer | None = None
        """The layer to forward: `_current` once its keyframe came."""
        self._current: Producer | None = None
        """The layer whose frames go out now (None: waiting for a keyframe)."""
        self._sent_from: Producer | None = None
        self._last_layer = producer
        self.leg: LegState = new_leg()
        """Its temporal layers and frame counters, shared with the C fan-out: frames of
        a temporal layer above `temporal_current` are not forwarded (`temporal_target`
        takes over at the next frame of temporal layer 0, which nothing after it looks
        past)."""
        self._on_fanout: Producer | None = None
        """The producer whose C fan-out sends to it, if any."""
        self._started = False
        """The subscriber accepted its m-section (and the send path is up)."""
        self._paused = paused
        self._forwarding = False
        """Started and not paused: what the media path checks, once per frame."""
        self._closed = False
        self.frames_dropped = 0
        self.keyframe_requests = 0
        self.layer_switches = 0
        # The output's counters when it was attached (an m-section carries consumers in
        # turn), and this consumer's own once it closed.
        self._sends_start = NO_SENDS
        self._sends_final: SendCounts | None = None
        self._add_layer(producer)

    def __repr__(self) -> str:
        return f"Consumer({self.id}, {self.publisher_id}/{self.source} -> {self.participant_id})"

    @property
    def frames_forwarded(self) -> int:
        return self.leg.frames_forwarded

    @property
    def frames_thinned(self) -> int:
        """Frames of a temporal layer above `max_temporal_layer`, not forwarded."""
        return self.leg.frames_thinned

    @property
    def producer(self) -> Producer:
        """The layer forwarded now, else the one it waits for (the last one it had once
        closed)."""
        return self._current or self._target or self._last_layer

    @property
    def producers(self) -> Mapping[int, Producer]:
        """The producers of its source by layer (0 the lowest)."""
        return MappingProxyType(self._layers)

    @property
    def layers(self) -> tuple[int, ...]:
        """The layers of its source published now, lowest first."""
        return tuple(sorted(self._layers))

    @property
    def preferred_layer(self) -> int | None:
        return self._preferred

    @property
    def current_layer(self) -> int | None:
        """The layer whose frames are being forwarded (None: none yet)."""
        current = self._current
        return None if current is None or not self._forwarding else current.layer

    @property
    def target_layer(self) -> int | None:
        """The layer it forwards once that layer's keyframe arrives."""
        target = self._target
        return None if target is None else target.layer

    @property
    def max_temporal_layer(self) -> int | None:
        """The highest temporal layer forwarded (None: all of them)."""
        target = self.leg.temporal_target
        return None if target == ALL_TEMPORAL_LAYERS else target

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active(self) -> bool:
        """The subscriber accepted this consumer's m-section (paused or not)."""
        return self._started

    @property
    def paused(self) -> bool:
        return self._paused

    def set_preferred_layer(self, layer: int | None) -> None:
        """Forward `layer` of the source, or the best one below it (the lowest if none is
        below; `None`: the best published). The switch happens at the new layer's next
        keyframe, requested at once. Raises `Closed` once closed."""
        self._check_open()
        self._preferred = layer
        self._retarget()

    def set_max_temporal_layer(self, layer: int | None) -> None:
        """Forward temporal layers 0 to `layer` of a publisher that sends temporal layers
        (VP8 ``L1T3``: 0 is a quarter of the frame rate, 1 half), None: all. Fewer take
        effect at once, more at the next frame of layer 0. Raises `Closed` once closed."""
        self._check_open()
        target = ALL_TEMPORAL_LAYERS if layer is None else min(max(layer, 0), ALL_TEMPORAL_LAYERS)
        leg = self.leg
        leg.temporal_target = target
        if target < leg.temporal_current:
            leg.temporal_current = target

    def pause(self) -> None:
        """Stop forwarding to this subscriber; its m-section stays negotiated (no new
        offer). Idempotent; raises `Closed` once closed."""
        self._check_open()
        self._paused = True
        self._forwarding = False
        self._sync_fanout()

    def resume(self) -> None:
        """Forward again, from the next keyframe (one is requested at once). Idempotent;
        raises `Closed` once closed."""
        self._check_open()
        if not self._paused:
            return
        self._paused = False
        if self._started:
            self._forward_from_keyframe()

    def close(self) -> None:
        """Stop forwarding to this subscriber. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._started = False
        self._forwarding = False
        for producer in self._layers.values():
            producer._remove_consumer(self)
        self._layers.clear()
        self._current = self._target = None
        self._sync_fanout()
        self._sends_final = self.sends()
        output = self._output
        if output is not None:
            if isinstance(output, DirectOutput) and output.rtp.on_path_change == self._sync_fanout:
                output.rtp.on_path_change = None
            output.detach()
            self._output = None
        self._on_close(self)

    def sends(self) -> SendCounts:
        """RTP packets, payload bytes, NACKs and retransmissions of this consumer."""
        if self._sends_final is not None:
            return self._sends_final
        output = self._output
        return NO_SENDS if output is None else output.counts().since(self._sends_start)

    def add_counters(self, into: ConsumerCounters) -> None:
        """Add this consumer's counters (those of `stats()`) to `into`; allocates no more
        than its output's `counts()`."""
        into.frames_forwarded += self.frames_forwarded
        into.frames_dropped += self.frames_dropped
        into.keyframe_requests += self.keyframe_requests
        into.layer_switches += self.layer_switches
        into.frames_thinned += self.frames_thinned
        sends = self._sends_final
        start = NO_SENDS
        if sends is None:
            output = self._output
            if output is None:
                return
            sends = output.counts()
            start = self._sends_start
        into.packets_forwarded += sends.packets - start.packets
        into.bytes_forwarded += sends.payload_bytes - start.payload_bytes
        into.nacks_received += sends.nacks - start.nacks
        into.retransmissions += sends.retransmissions - start.retransmissions

    def link(self) -> LinkQuality:
        """The subscriber's latest receiver report on this consumer's stream (direct send
        path; all None before the first one and on the aiortc path)."""
        output = self._output
        return NO_LINK if output is None or self._closed else output.link()

    def stats(self) -> ConsumerStats:
        sends = self.sends()
        link = self.link()
        return ConsumerStats(
            consumer_id=self.id,
            producer_id=self.producer.id,
            participant_id=self.participant_id,
            kind=self.kind,
            state="closed" if self._closed else "active" if self._started else "pending",
            paused=self._paused,
            frames_forwarded=self.frames_forwarded,
            frames_dropped=self.frames_dropped,
            keyframe_requests=self.keyframe_requests,
            waiting_keyframe=self._current is None,
            packets_forwarded=sends.packets,
            bytes_forwarded=sends.payload_bytes,
            nacks_received=sends.nacks,
            retransmissions=sends.retransmissions,
            round_trip_time=link.round_trip_time,
            fraction_lost=link.fraction_lost,
            packets_lost=link.packets_lost,
            jitter=link.jitter,
            source=self.source,
            layer=self.current_layer,
            target_layer=None if self._paused else self.target_layer,
            layer_switches=self.layer_switches,
            max_temporal_layer=self.max_temporal_layer,
            frames_thinned=self.frames_thinned,
        )

    # ----------------------------------------------------------------- layers

    def _add_layer(self, producer: Producer) -> None:
        """Also take `producer`, another layer of this consumer's source (Router.consume)."""
        existing = self._layers.get(producer.layer)
        if existing is producer:
            return
        if existing is not None:
            existing._remove_consumer(self)
            if self._current is existing:
                self._current = None
                self._sync_fanout()
        self._layers[producer.layer] = producer
        self._last_layer = producer
        producer._add_consumer(self)
        self._retarget()

    def _layer_closed(self, producer: Producer) -> None:
        """One of its source's producers closed: go on with the others, if any."""
        if self._layers.get(producer.layer) is producer:
            del self._layers[producer.layer]
        if not self._layers:
            self.close()
            return
        if self._current is producer:
            self._current = None
        self._retarget()
        self._sync_fanout()

    def _retarget(self) -> None:
        layers = self._layers
        if not layers:
            return
        preferred = self._preferred
        below = [layer for layer in layers if preferred is None or layer <= preferred]
        target = layers[max(below) if below else min(layers)]
        self._target = target
        self._last_layer = target
        self._sync_fanout()
        if self._forwarding and target is not self._current:
            target.request_keyframe()

    # ----------------------------------------------------------------- used by the subscription

    def _attach(self, output: Output) -> None:
        self._output = output
        self._sends_start = output.counts()
        if isinstance(output, DirectOutput):
            output.rtp.on_path_change = self._sync_fanout
            self._sync_fanout()

    def _sync_fanout(self) -> None:
        """Put it on its producer's C fan-out when it is in steady state (see the class
        docstring), take it off when it is not."""
        current = self._current
        output = self._output
        steady = (
            current is not None
            and self._forwarding
            and current is self._target
            and isinstance(output, DirectOutput)
            and output.rtp.fans_out
        )
        on = self._on_fanout
        new = current if steady else None
        if new is not on:
            if on is not None:
                on._fanout_remove(self)
            self._on_fanout = new
            if new is not None:
                assert isinstance(output, DirectOutput)
                self.leg.stream = output.rtp.fanout_stream
                new._fanout_add(self)
        for producer in tuple(self._layers.values()):
            producer._consumer_changed()

    def takes_frames_from(self, producer: Producer) -> bool:
        """True when `_deliver` would use a non-key frame of `producer`: it forwards that
        layer, or waits for its first keyframe (and counts what it drops meanwhile)."""
        if not self._forwarding:
            return False
        current = self._current
        return current is producer or (current is None and self._target is producer)

    def _fanout_failed(self, status: int) -> None:
        """The C fan-out could not send it a frame (`DirectRtpSender.send_failed`)."""
        output = self._output
        if isinstance(output, DirectOutput):
            output.rtp.send_failed(status)

    def _begin_forwarding(self) -> None:
        """The subscriber accepted this consumer's m-section (or its transport came up):
        forward from the next keyframe on."""
        if self._closed or self._output is None:
            return
        self._started = True
        if not self._paused:
            self._forward_from_keyframe()

    def _forward_from_keyframe(self) -> None:
        # Every audio frame counts as a keyframe: audio starts at its next frame.
        self._forwarding = True
        self._current = None
        self._sync_fanout()
        if self._target is not None:
            self._target.request_keyframe()

    def _keyframe_requested(self) -> None:
        """The subscriber sent a PLI or FIR for this stream."""
        self.keyframe_requests += 1
        if self._forwarding:
            self.producer.request_keyframe()

    def _check_open(self) -> None:
        if self._closed:
            raise Closed(f"consumer {self.id} is closed")

    # ----------------------------------------------------------------- media path

    def _deliver(self, frame: MediaFrame) -> None:
        if not self._forwarding:
            return
        source = frame.producer
        if source is not self._current:
            if source is None or source is not self._target:
                return  # another layer of the source
            if not frame.keyframe:
                if self._current is None:
                    self.frames_dropped += 1
                return
            self._switch_to(source)
        temporal = frame.temporal
        leg = self.leg
        if temporal == 0:
            leg.temporal_current = leg.temporal_target
        elif temporal > leg.temporal_current:
            leg.frames_thinned += 1
            return
        output = self._output
        assert output is not None
        if output.push(frame):
            leg.frames_forwarded += 1
            return
        self.frames_dropped += 1
        if output.ready:
            # The sender fell a second behind: resume from the next keyframe.
            self._current = None
            self._sync_fanout()
            self.producer.request_keyframe()

    def _switch_to(self, producer: Producer) -> None:
        previous = self._sent_from
        if previous is not None and previous is not producer:
            output = self._output
            assert output is not None
            last = previous.last_frame_at
            elapsed = 0.0 if last is None else time.monotonic() - last
            output.switch_source(int(elapsed * self.codec.clock_rate))
            self.layer_switches += 1
        self._current = self._sent_from = producer
        self._sync_fanout()

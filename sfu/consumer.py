"""A forwarded track towards one subscriber, and the aiortc track that carries it.

`ForwardingTrack.recv()` returns `av.Packet`s, so the subscriber's `RTCRtpSender` only
packetizes them (and keeps doing sender reports, NACK history and RTX); nothing is
encoded or decoded.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Protocol

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.stream import Stream

from sfu.aiortc_adapter import SenderCounters
from sfu.counters import ConsumerCounters
from sfu.direct_send import DirectRtpSender
from sfu.errors import Closed
from sfu.ids import AppData, ConsumerId, MediaKind, ParticipantId
from sfu.producer import MediaFrame, Producer
from sfu.rtp_rewriter import PTS_STEP, PtsRebaser
from sfu.stats import NO_LINK, NO_SENDS, ConsumerStats, LinkQuality, SendCounts


class Output(Protocol):
    """Where a consumer's frames go: a `ForwardingTrack` or a `DirectOutput`."""

    @property
    def ready(self) -> bool: ...

    def push(self, frame: MediaFrame) -> bool: ...

    def detach(self) -> None: ...

    def counts(self) -> SendCounts:
        """Everything its m-section's sender sent so far (for all consumers it carried)."""
        ...

    def link(self) -> LinkQuality:
        """What the subscriber's latest receiver report says about the stream."""
        ...


class DirectOutput:
    """Sends frames through a `DirectRtpSender` (the ``direct`` send path)."""

    __slots__ = ("rtp",)

    def __init__(self, rtp: DirectRtpSender) -> None:
        self.rtp = rtp

    @property
    def ready(self) -> bool:
        return self.rtp.ready

    def push(self, frame: MediaFrame) -> bool:
        assert frame.payloads is not None
        return self.rtp.send_frame(frame.payloads, frame.pts)

    def detach(self) -> None:
        self.rtp.detach()

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
        self._frames: deque[MediaFrame] = deque()
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
        frames.append(frame)
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

    async def recv(self) -> av.Packet[Stream]:
        frames = self._frames
        while not frames:
            if self.readyState != "live":
                raise MediaStreamError
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter
        frame = frames.popleft()
        pts = self._pts.rebase(frame.pts)
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
    """One producer forwarded to one subscriber (mediasoup's Consumer).

    Made by `Router.consume`. It starts once the subscriber's answer includes its
    m-section: a keyframe is requested and everything before the first keyframe is
    dropped. `pause()` stops forwarding to this subscriber without renegotiating (the
    m-section stays); `resume()` requests a keyframe and forwards again from the next
    one. Closing it (or its producer) removes its m-section from the subscriber's next
    offer.
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
        self.producer = producer
        self.participant_id = participant_id
        self.kind: MediaKind = producer.kind
        self.app_data: AppData = dict(app_data or {})
        self._on_close = on_close
        self._output: Output | None = None
        self._started = False
        """The subscriber accepted its m-section (and the send path is up)."""
        self._paused = paused
        self._forwarding = False
        """Started and not paused: what the media path checks, once per frame."""
        self._awaiting_keyframe = True
        self._closed = False
        self.frames_forwarded = 0
        self.frames_dropped = 0
        self.keyframe_requests = 0
        # The output's counters when it was attached (an m-section carries consumers in
        # turn), and this consumer's own once it closed.
        self._sends_start = NO_SENDS
        self._sends_final: SendCounts | None = None

    def __repr__(self) -> str:
        return f"Consumer({self.id}, {self.producer!r} -> {self.participant_id})"

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

    def pause(self) -> None:
        """Stop forwarding to this subscriber; its m-section stays negotiated (no new
        offer). Idempotent; raises `Closed` once closed."""
        self._check_open()
        self._paused = True
        self._forwarding = False

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
        self.producer._remove_consumer(self)
        self._sends_final = self.sends()
        if self._output is not None:
            self._output.detach()
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
            waiting_keyframe=self._awaiting_keyframe,
            packets_forwarded=sends.packets,
            bytes_forwarded=sends.payload_bytes,
            nacks_received=sends.nacks,
            retransmissions=sends.retransmissions,
            round_trip_time=link.round_trip_time,
            fraction_lost=link.fraction_lost,
            packets_lost=link.packets_lost,
            jitter=link.jitter,
        )

    # ----------------------------------------------------------------- used by the subscription

    def _attach(self, output: Output) -> None:
        self._output = output
        self._sends_start = output.counts()

    def _begin_forwarding(self) -> None:
        """The subscriber accepted this consumer's m-section (or its transport came up):
        forward from the next keyframe on."""
        if self._closed or self._output is None:
            return
        self._started = True
        if not self._paused:
            self._forward_from_keyframe()

    def _forward_from_keyframe(self) -> None:
        self._forwarding = True
        self._awaiting_keyframe = self.kind == "video"
        self.producer.request_keyframe()

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
        if self._awaiting_keyframe and not frame.keyframe:
            self.frames_dropped += 1
            return
        output = self._output
        assert output is not None
        if output.push(frame):
            self._awaiting_keyframe = False
            self.frames_forwarded += 1
            return
        self.frames_dropped += 1
        if output.ready:
            # The sender fell a second behind: resume from the next keyframe.
            self._awaiting_keyframe = self.kind == "video"
            self.producer.request_keyframe()

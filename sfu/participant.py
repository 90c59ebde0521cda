"""A participant of a room: a publish connection (client offers) and a subscribe
connection (server offers), its producers and its consumers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError

from sfu import aiortc_adapter
from sfu.assembler import Packet
from sfu.config import MediaConfig
from sfu.connect_deadline import ConnectDeadline
from sfu.consumer import Consumer
from sfu.errors import AdapterError, Closed, InvalidSdp, InvalidState
from sfu.events import SafeListener
from sfu.fanout import FanoutReport
from sfu.ice_candidates import add_ice_candidate
from sfu.ids import (
    AppData,
    ConsumerId,
    DisconnectReason,
    ParticipantId,
    PcName,
    ProducerId,
    StreamLabel,
    TrackSource,
)
from sfu.native_receive import Tally
from sfu.peer import create_peer_connection, set_local_description
from sfu.producer import Producer, ReceiveCounts
from sfu.sdp import PublishPlan, TrackSpec, plan_publish
from sfu.stats import ParticipantStats
from sfu.subscription import Subscription
from sfu.track_caps import TrackCap, TrackCaps

if TYPE_CHECKING:
    from sfu.router import Router

logger = logging.getLogger(__name__)

_RTP_HEADER = 12  # bytes a capped packet is charged on top of its payload (Python path)


class _PublishSlot:
    """One m-section of the publish connection; its receiver is intercepted for good.
    Packets (the Python receive path) or frames (the native one) go to its producer."""

    __slots__ = ("_cap", "_producer", "native_counts", "transceiver")

    def __init__(self, transceiver: RTCRtpTransceiver, caps: TrackCaps) -> None:
        self.transceiver = transceiver
        self._producer: Producer | None = None
        self.native_counts: ReceiveCounts | None = None
        self._cap = TrackCap(*caps.for_kind(transceiver.kind), time.monotonic())

    @property
    def producer(self) -> Producer | None:
        return self._producer

    @producer.setter
    def producer(self, producer: Producer | None) -> None:
        self._producer = producer
        if producer is not None and self.native_counts is not None:
            producer.count_natively(self.native_counts)

    def on_packet(self, packet: Packet, data: bytes) -> None:
        producer = self._producer
        if producer is not None and self._cap.admit(len(data) + _RTP_HEADER, time.monotonic()):
            producer.on_packet(packet, data)

    def on_native_counts(self, counts: ReceiveCounts) -> None:
        self.native_counts = counts
        if self._producer is not None:
            self._producer.count_natively(counts)

    def on_native_frame(
        self, payloads: tuple[bytes, ...], pts: int, keyframe: bool, temporal: int, sync: bool
    ) -> None:
        producer = self._producer
        if producer is not None:
            producer.on_native_frame(payloads, pts, keyframe, temporal, sync)

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
        if self._producer is not None:
            self._producer.on_native_report(report, legs, payloads, pts, keyframe, temporal, sync)

    def on_native_tally(self, tally: Tally) -> None:
        if self._producer is not None:
            self._producer.on_native_tally(tally)

    def on_native_level(self, level: int, voice: bool) -> None:
        if self._producer is not None:
            self._producer.on_native_level(level, voice)

    def on_native_silence(self) -> None:
        if self._producer is not None:
            self._producer.on_native_silence()

    def on_native_loss(self) -> None:
        if self._producer is not None:
            self._producer.on_native_loss()


class Participant:
    """One member of a room, with its two peer connections.

    - `publish(offer)` answers the client's publish offer (a new offer renegotiates);
      each sending m-section becomes a `Producer`.
    - It receives what `Router.consume` gives it: the subscribe connection is offered by
      the server whenever its consumers come and go (`RouterListener.on_subscribe_offer`;
      none before its first consumer); `subscribe_answer(answer)` completes it.
    - `close()` closes its producers (and so their consumers everywhere), its consumers
      and both connections.

    Create participants with `Router.add_participant`.
    """

    def __init__(
        self,
        router: Router,
        participant_id: ParticipantId,
        config: MediaConfig,
        listener: SafeListener,
        app_data: AppData | None = None,
    ) -> None:
        self.id = participant_id
        self.app_data: AppData = dict(app_data or {})
        self.stream_id = uuid.uuid4().hex
        """Prefix of the msid stream ids of this participant's tracks in other subscribe
        offers (`stream_id_of`)."""
        self._router = router
        self._config = config
        self._listener = listener
        self._producers: dict[ProducerId, Producer] = {}
        self._consumers: dict[ConsumerId, Consumer] = {}
        self._by_source: dict[tuple[ParticipantId, TrackSource], Consumer] = {}
        self._publish_pc: RTCPeerConnection | None = None
        self._publish_slots: dict[str, _PublishSlot] = {}
        self._publish_remb = aiortc_adapter.RembSum()
        self._publish_lock = asyncio.Lock()
        self._plan: PublishPlan | None = None
        self._track_error: Exception | None = None
        self._subscription = Subscription(config, self._send_offer, self._connection_changed)
        self._deadline = ConnectDeadline(config.ice_connect_timeout, self._connect_expired)
        self._connected = False
        self._disconnect_reported = False
        self._remote_close: asyncio.TimerHandle | None = None
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Participant({self.id})"

    @property
    def router(self) -> Router:
        return self._router

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        """True once media came up, until it failed or the participant closed."""
        return self._connected and not self._disconnect_reported

    @property
    def producers(self) -> Mapping[ProducerId, Producer]:
        """Tracks this participant publishes."""
        return MappingProxyType(self._producers)

    @property
    def consumers(self) -> Mapping[ConsumerId, Consumer]:
        """Tracks of others forwarded to this participant."""
        return MappingProxyType(self._consumers)

    @property
    def publish_pc(self) -> RTCPeerConnection | None:
        return self._publish_pc

    @property
    def subscribe_pc(self) -> RTCPeerConnection | None:
        return self._subscription.pc

    @property
    def downlink_limit(self) -> float | None:
        """bit/s its subscribe connection takes without congestion, from the subscriber's
        REMB and receiver reports (`sfu.bandwidth`); None while nothing limits it."""
        estimate = self._subscription.downlink()
        return None if estimate is None else estimate.limit

    @property
    def subscription(self) -> Subscription:
        """The subscribe side's negotiation state (for monitoring and tests)."""
        return self._subscription

    # ----------------------------------------------------------------- publish

    def stream_id_of(self, source: TrackSource) -> str:
        """The msid stream id of this participant's `source` in subscribe offers: one
        stream per source, whichever layer of it is forwarded."""
        return f"{self.stream_id}-{source}"

    async def publish(self, offer_sdp: str, tracks: Mapping[str, TrackSpec] | None = None) -> str:
        """Answer the client's publish offer; returns the answer SDP.

        `tracks` names the source and layer of m-sections by mid (the others carry their
        kind's default source). Raises `InvalidSdp` (nothing applied, the connection
        unharmed) or `InvalidState`.
        """
        self._check_open()
        async with self._publish_lock:
            self._check_open()
            plan = plan_publish(
                offer_sdp, self._config.video_codecs, self._config.publisher_remb, tracks
            )
            first = self._publish_pc is None
            pc = self._publish_pc or self._create_publish_pc()
            if pc.signalingState != "stable":
                raise InvalidState(f"publish connection is in state {pc.signalingState}")
            self._plan = plan
            self._track_error = None
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=plan.sdp, type="offer"))
            except InvalidStateError as exc:
                raise InvalidState(f"publish offer not applicable: {exc}") from None
            except Exception as exc:
                if first:
                    # Nothing was ever negotiated: start afresh with the next offer.
                    self._publish_pc = None
                    self._publish_slots.clear()
                    await pc.close()
                raise InvalidSdp(f"publish offer rejected: {type(exc).__name__}: {exc}") from None
            if self._track_error is not None:
                raise self._track_error
            self._check_interception(pc)
            self._reconcile_producers(plan)
            answer = await pc.createAnswer()
            sdp = await set_local_description(pc, answer, self._config)
            if self._config.sync_receive:
                aiortc_adapter.receive_media_synchronously(pc)
                if self._config.native_receive_active:
                    aiortc_adapter.receive_natively(
                        pc,
                        self._slot_of,
                        max_wait=self._config.max_frame_wait,
                        remb_bitrate=(
                            self._config.publisher_remb_ceiling
                            if self._config.publisher_remb
                            else None
                        ),
                        caps=self._config.track_caps,
                    )
            self._deadline.arm(pc)
            return sdp

    def _create_publish_pc(self) -> RTCPeerConnection:
        pc = create_peer_connection(self._config)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", lambda: self._connection_changed(pc))
        self._publish_pc = pc
        return pc

    def _slot_of(self, receiver: RTCRtpReceiver) -> _PublishSlot | None:
        return next(
            (s for s in self._publish_slots.values() if s.transceiver.receiver is receiver),
            None,
        )

    def _on_track(self, track: MediaStreamTrack) -> None:
        # Runs inside setRemoteDescription, before receive() can start the decoder thread.
        pc = self._publish_pc
        assert pc is not None
        try:
            transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
            assert transceiver.mid is not None
            slot = _PublishSlot(transceiver, self._config.track_caps)
            aiortc_adapter.intercept_receiver(transceiver.receiver, slot.on_packet)
            if track.kind == "video":
                aiortc_adapter.sum_remb(transceiver.receiver, self._publish_remb)
            self._publish_slots[transceiver.mid] = slot
        except Exception as exc:
            logger.exception("cannot intercept a published track")
            self._track_error = exc

    def _check_interception(self, pc: RTCPeerConnection) -> None:
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not None and not aiortc_adapter.is_intercepted(
                transceiver.receiver
            ):
                raise AdapterError(
                    f"receiver of mid {transceiver.mid} is not intercepted: it would decode"
                )

    def _reconcile_producers(self, plan: PublishPlan) -> None:
        for mid, media in plan.media.items():
            slot = self._publish_slots.get(mid)
            if slot is None:
                continue
            producer = slot.producer
            if media.sending and media.codec is not None:
                if producer is not None and not producer.closed:
                    if (producer.codec.key, producer.source, producer.layer) == (
                        media.codec.key,
                        media.source,
                        media.layer,
                    ):
                        continue
                    producer.close()
                producer = Producer(
                    producer_id=ProducerId(uuid.uuid4().hex),
                    participant_id=self.id,
                    stream_id=self.stream_id_of(media.source),
                    kind=media.kind,
                    source=media.source,
                    layer=media.layer,
                    codec=media.codec,
                    receiver=slot.transceiver.receiver,
                    config=self._config,
                    listener=self._listener,
                    on_close=self._producer_closed,
                    app_data={"mid": mid, **self.app_data},
                )
                slot.producer = producer
                self._producers[producer.id] = producer
                self._router._producer_added(producer)
            elif producer is not None:
                producer.close()

    def _producer_closed(self, producer: Producer) -> None:
        self._producers.pop(producer.id, None)
        for slot in self._publish_slots.values():
            if slot.producer is producer:
                slot.producer = None
        self._router._producer_removed(producer)

    # ----------------------------------------------------------------- subscribe

    async def subscribe_answer(self, answer_sdp: str) -> None:
        """Apply the client's answer to the last subscribe offer.

        Raises `InvalidState` when no offer is outstanding, `InvalidSdp` when the answer
        is malformed (the offer stays outstanding: the client may answer again).
        """
        self._check_open()
        await self._subscription.apply_answer(answer_sdp)
        self._deadline.arm(self._subscription.pc)

    def consumer_of(self, producer: Producer) -> Consumer | None:
        """This participant's open consumer of `producer`'s source (which forwards one of
        its layers), if it has one."""
        return self._by_source.get((producer.participant_id, producer.source))

    def _consume(self, producer: Producer, paused: bool, app_data: AppData | None) -> Consumer:
        # Router.consume checked everything: both open, in this router, not our own.
        consumer = Consumer(
            consumer_id=ConsumerId(uuid.uuid4().hex),
            producer=producer,
            participant_id=self.id,
            on_close=self._consumer_closed,
            paused=paused,
            app_data=app_data,
        )
        self._consumers[consumer.id] = consumer
        self._by_source[(consumer.publisher_id, consumer.source)] = consumer
        self._subscription.add(consumer)
        return consumer

    def _consumer_closed(self, consumer: Consumer) -> None:
        if self._consumers.pop(consumer.id, None) is consumer:
            self._router._consumer_removed(consumer)
        key = (consumer.publisher_id, consumer.source)
        if self._by_source.get(key) is consumer:
            del self._by_source[key]
        self._subscription.remove(consumer)

    def _send_offer(self, offer_sdp: str, streams: dict[str, StreamLabel]) -> None:
        if not self._closed and not self._router.closed:
            self._listener.on_subscribe_offer(self, offer_sdp, streams)

    # ----------------------------------------------------------------- ICE, state, close

    async def add_ice_candidate(self, pc: PcName, candidate: Mapping[str, Any] | None) -> None:
        """Add a trickled client candidate (`None`: end of candidates) to `pc`."""
        self._check_open()
        if pc == "subscribe":
            await self._subscription.add_ice_candidate(candidate)
        elif pc == "publish":
            async with self._publish_lock:
                target = self._publish_pc
                if target is None or target.remoteDescription is None:
                    raise InvalidState("the publish connection has not been negotiated yet")
                await add_ice_candidate(target, candidate)
        else:
            raise InvalidState(f"unknown peer connection {pc!r}")

    def _connection_changed(self, pc: RTCPeerConnection) -> None:
        if self._closed:
            return
        state = pc.connectionState
        if state == "connected" and not self._connected:
            self._connected = True
            self._listener.on_participant_connected(self)
        elif state == "failed":
            self._log_lost(pc, state)
            self._report_disconnected("failed")
        elif state == "closed" and self._remote_close is None:
            # The client closed it: a leave on its way, or a client that gave up on media.
            self._remote_close = asyncio.get_running_loop().call_later(
                self._config.remote_close_grace, self._remote_closed, pc
            )

    def _remote_closed(self, pc: RTCPeerConnection) -> None:
        if not self._closed:
            self._log_lost(pc, "closed by the client")
            self._report_disconnected("failed")

    def _log_lost(self, pc: RTCPeerConnection, how: str) -> None:
        which = "publish" if pc is self._publish_pc else "subscribe"
        ice = {t.receiver.transport.transport.state for t in pc.getTransceivers()}
        dtls = {t.receiver.transport.state for t in pc.getTransceivers()}
        logger.info(
            "participant %s: the %s connection is %s (ICE %s, DTLS %s)",
            self.id,
            which,
            how,
            "/".join(sorted(ice)) or "-",
            "/".join(sorted(dtls)) or "-",
        )

    def _connect_expired(self, pc: RTCPeerConnection) -> None:
        if not self._closed:
            self._report_disconnected("failed")

    def _report_disconnected(self, reason: DisconnectReason) -> None:
        if not self._disconnect_reported:
            self._disconnect_reported = True
            self._listener.on_participant_disconnected(self, reason)

    async def close(self) -> None:
        """Close producers, consumers and both connections; leave the router. Idempotent."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        self._closed = True
        if self._remote_close is not None:
            self._remote_close.cancel()
        await self._deadline.close()
        for producer in list(self._producers.values()):
            producer.close()
        for consumer in list(self._consumers.values()):
            consumer.close()
        await self._subscription.close()
        if self._publish_pc is not None:
            await self._publish_pc.close()
        self._publish_slots.clear()
        if self._connected:
            self._report_disconnected("closed")
        self._router._participant_closed(self)

    def stats(self) -> ParticipantStats:
        publish = self._publish_pc.connectionState if self._publish_pc else "new"
        subscribe = self.subscribe_pc.connectionState if self.subscribe_pc else "new"
        return ParticipantStats(
            participant_id=self.id,
            connected=self.connected,
            publish_state=publish,
            subscribe_state=subscribe,
            producers=tuple(p.stats() for p in self._producers.values()),
            consumers=tuple(c.stats() for c in self._consumers.values()),
            downlink_limit=self.downlink_limit,
            downlink_remb=None
            if (estimate := self._subscription.downlink()) is None
            else estimate.remb,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise Closed(f"participant {self.id} is closed")

"""The subscribe side of a participant: the server offers, the client answers.

Each consumer is carried by one m-section (a "slot": transceiver + `ForwardingTrack`).
When a consumer goes away its slot is offered as ``inactive`` and, once the client has
answered, reused for the next producer with the same codec, so the SDP does not grow
with every join and leave. Only one offer is outstanding at a time; changes that come
meanwhile are folded into the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.exceptions import InvalidStateError

from sfu import aiortc_adapter
from sfu.bandwidth import DownlinkEstimate
from sfu.codecs import subscriber_preferences
from sfu.config import MediaConfig
from sfu.consumer import Consumer, DirectOutput, ForwardingTrack, Output
from sfu.direct_send import DirectRtpSender
from sfu.errors import Closed, InvalidSdp, InvalidState
from sfu.ice_candidates import add_ice_candidate
from sfu.ids import ConsumerId, StreamLabel
from sfu.peer import create_peer_connection, set_local_description
from sfu.sdp import ABS_SEND_TIME_URI, check_answer, strip_header_extension

logger = logging.getLogger(__name__)

OfferHandler = Callable[[str, dict[str, StreamLabel]], None]
SlotState = Literal["offering", "active", "releasing", "deactivating", "free"]


class OfferState:
    """Pure negotiation bookkeeping: one offer outstanding, changes folded into the next."""

    def __init__(self) -> None:
        self.phase: Literal["stable", "building", "awaiting_answer"] = "stable"
        self.dirty = False

    def changed(self) -> bool:
        """Record a change; True when an offer should be built now."""
        self.dirty = True
        return self.phase == "stable"

    def start_building(self) -> bool:
        """True (and the changes taken) when a new offer may be built now."""
        if self.phase != "stable" or not self.dirty:
            return False
        self.phase = "building"
        self.dirty = False
        return True

    def offer_sent(self) -> None:
        self.phase = "awaiting_answer"

    def nothing_to_offer(self) -> None:
        self.phase = "stable"

    def answer_applied(self) -> bool:
        """The answer is in; True when changes are waiting for another offer."""
        self.phase = "stable"
        return self.dirty


class _Slot:
    """One sendonly m-section of the subscribe connection."""

    def __init__(self, transceiver: RTCRtpTransceiver, track: ForwardingTrack, key: object) -> None:
        self.transceiver = transceiver
        self.track = track
        self.output: Output = track
        self.key = key
        self.consumer: Consumer | None = None
        self.state: SlotState = "offering"

    def keyframe_requested(self) -> None:
        if self.consumer is not None:
            self.consumer._keyframe_requested()

    def output_ready(self) -> None:
        # The direct sender's transport came up after the answer: start from a keyframe.
        if self.consumer is not None and self.state == "active":
            self.consumer._begin_forwarding()


class Subscription:
    """The subscribe peer connection of one participant and its negotiation."""

    def __init__(
        self,
        config: MediaConfig,
        on_offer: OfferHandler,
        on_connection_state: Callable[[RTCPeerConnection], None],
    ) -> None:
        self._config = config
        self._on_offer = on_offer
        self._on_connection_state = on_connection_state
        self._pc: RTCPeerConnection | None = None
        self._slots: list[_Slot] = []
        self._unplaced: dict[ConsumerId, Consumer] = {}
        self._offer = OfferState()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.offers_sent = 0

    @property
    def pc(self) -> RTCPeerConnection | None:
        return self._pc

    @property
    def phase(self) -> str:
        return self._offer.phase

    @property
    def slot_count(self) -> int:
        return len(self._slots)

    def downlink(self) -> DownlinkEstimate | None:
        """The connection's downlink estimate (direct send path, once media flows)."""
        for slot in self._slots:
            output = slot.output
            if isinstance(output, DirectOutput) and output.rtp.reports is not None:
                return output.rtp.reports.estimate
        return None

    def add(self, consumer: Consumer) -> None:
        """Carry a new consumer in the next offer."""
        if self._closed:
            return
        self._unplaced[consumer.id] = consumer
        self._changed()

    def remove(self, consumer: Consumer) -> None:
        """Drop a consumer; its m-section turns inactive in the next offer."""
        if self._closed:
            return
        if self._unplaced.pop(consumer.id, None) is not None:
            return
        for slot in self._slots:
            if slot.consumer is consumer:
                slot.consumer = None
                slot.output.detach()
                if slot.state in ("offering", "active"):
                    slot.state = "releasing"
                    self._changed()
                return

    async def apply_answer(self, answer_sdp: str) -> None:
        """Apply the client's answer to the outstanding offer."""
        if self._closed:
            raise Closed("participant is closed")
        async with self._lock:
            if self._offer.phase != "awaiting_answer" or self._pc is None:
                raise InvalidState("no subscribe offer is outstanding")
            sdp = check_answer(answer_sdp)
            try:
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except InvalidStateError as exc:
                raise InvalidState(f"subscribe answer not applicable: {exc}") from None
            except Exception as exc:
                raise InvalidSdp(
                    f"subscribe answer rejected: {type(exc).__name__}: {exc}"
                ) from None
            for slot in self._slots:
                if slot.state == "offering":
                    slot.state = "active"
                    if slot.consumer is not None:
                        slot.consumer._begin_forwarding()
                elif slot.state == "deactivating":
                    slot.state = "free"
            if self._offer.answer_applied():
                self._kick()

    async def add_ice_candidate(self, candidate: Mapping[str, Any] | None) -> None:
        if self._closed:
            raise Closed("participant is closed")
        pc = self._pc
        if pc is None or pc.remoteDescription is None:
            raise InvalidState("the subscribe connection has not been negotiated yet")
        await add_ice_candidate(pc, candidate)

    async def close(self) -> None:
        """Stop negotiating and close the subscribe peer connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._unplaced.clear()
        for slot in self._slots:
            slot.consumer = None
        if self._pc is not None:
            await self._pc.close()

    # ----------------------------------------------------------------- negotiation

    def _changed(self) -> None:
        if self._offer.changed():
            self._kick()

    def _kick(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._negotiate())

    async def _negotiate(self) -> None:
        try:
            async with self._lock:
                while self._offer.start_building():
                    offer = await self._build_offer()
                    if offer is None:
                        self._offer.nothing_to_offer()
                        continue
                    self._offer.offer_sent()
                    self.offers_sent += 1
                    self._on_offer(*offer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pc_closed():  # failed or timed out meanwhile: the participant is leaving
                logger.debug("subscribe offer not built, the connection closed: %s", exc)
            else:
                logger.exception("building a subscribe offer failed")
            self._offer.nothing_to_offer()
        finally:
            self._task = None

    async def _build_offer(
        self,
    ) -> tuple[str, dict[str, StreamLabel]] | None:
        if self._pc_closed():  # closed, or the client closed it: nothing to offer
            return None
        changed = False
        for slot in self._slots:
            if slot.state == "releasing":
                slot.transceiver.direction = "inactive"
                slot.state = "deactivating"
                changed = True
        if self._unplaced:
            pc = self._ensure_pc()
            for consumer in self._unplaced.values():
                self._place(pc, consumer)
            self._unplaced.clear()
            changed = True
        if not changed or self._pc is None or self._pc_closed():
            return None
        streams = {
            slot.consumer.stream_id: StreamLabel(slot.consumer.publisher_id, slot.consumer.source)
            for slot in self._slots
            if slot.consumer is not None and slot.state in ("offering", "active")
        }
        offer = await self._pc.createOffer()
        sdp = offer.sdp
        if not (self._config.subscriber_remb and self._config.send_path == "direct"):
            sdp = strip_header_extension(sdp, ABS_SEND_TIME_URI)
        sdp = await set_local_description(
            self._pc, RTCSessionDescription(sdp=sdp, type="offer"), self._config
        )
        if self._config.sync_receive:
            aiortc_adapter.receive_media_synchronously(self._pc)
        return sdp, streams

    def _pc_closed(self) -> bool:
        return self._pc is not None and aiortc_adapter.close_began(self._pc)

    def _ensure_pc(self) -> RTCPeerConnection:
        if self._pc is None:
            pc = create_peer_connection(self._config)
            pc.on("connectionstatechange", lambda: self._connection_changed(pc))
            self._pc = pc
        return self._pc

    def _connection_changed(self, pc: RTCPeerConnection) -> None:
        config = self._config
        connected = pc.connectionState == "connected"
        if connected and config.sync_receive and config.coalesce_control_reads:
            aiortc_adapter.defer_control_reads(pc, native=self._config.native_receive_active)
        self._on_connection_state(pc)

    def _place(self, pc: RTCPeerConnection, consumer: Consumer) -> None:
        key = consumer.codec.key
        slot = next((s for s in self._slots if s.state == "free" and s.key == key), None)
        if slot is None:
            track = ForwardingTrack(consumer.kind, self._config.consumer_queue_frames)
            transceiver = aiortc_adapter.add_sendonly_transceiver(pc, track)
            transceiver.setCodecPreferences(subscriber_preferences(consumer.codec))
            slot = _Slot(transceiver, track, key)
            if self._config.send_path == "direct":
                rtp = DirectRtpSender(
                    transceiver.sender,
                    consumer.kind,
                    slot.output_ready,
                    native=self._config.native_send,
                    fanout=self._config.native_fanout,
                )
                slot.output = DirectOutput(rtp)
            else:
                track.sender_counters = aiortc_adapter.SenderCounters(transceiver.sender)
            aiortc_adapter.on_keyframe_request(transceiver.sender, slot.keyframe_requested)
            self._slots.append(slot)
        else:
            slot.transceiver.direction = "sendonly"
            slot.state = "offering"
        aiortc_adapter.set_msid(slot.transceiver.sender, consumer.stream_id, consumer.id)
        slot.consumer = consumer
        consumer._attach(slot.output)

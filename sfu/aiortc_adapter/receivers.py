"""Receivers: publisher packets routed to the forwarder instead of a decoder, sendonly
receivers without receive state, upstream PLI and NACK counting, one REMB per publish
connection."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc import rtcrtpreceiver as aiortc_rtcrtpreceiver
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unpack_remb_fci

from sfu.aiortc_adapter.internals import (
    RX_BITRATE_ESTIMATOR,
    RX_DECODER_QUEUE,
    RX_DECODER_THREAD,
    RX_ESTIMATOR_CLASS,
    RX_JITTER_BUFFER,
    RX_NACK_GENERATOR,
    RX_SEND_NACK,
    RX_SEND_PLI,
    RX_SEND_RTCP,
    require,
)
from sfu.errors import AdapterError

PacketHandler = Callable[[RtpPacket, bytes], None]
"""Called with every RTP packet (RTX already unwrapped) and its depayloaded payload."""

_NO_FRAME: tuple[bool, None] = (False, None)


class _PacketTap:
    """Stands in for the receiver's jitter buffer: forwards packets, never returns a frame.

    aiortc calls `add(packet)` for every media packet after NACK bookkeeping and
    depayloading, and sends a PLI when the first element of the result is true; our own
    keyframe policy decides that instead, so it is always false.
    """

    __slots__ = ("_on_packet",)

    def __init__(self, on_packet: PacketHandler) -> None:
        self._on_packet = on_packet

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self._on_packet(packet, packet._data)  # type: ignore[attr-defined]
        return _NO_FRAME


class DecoderQueueStub:
    """Stands in for the receiver's decoder queue.

    The decoder thread that `RTCRtpReceiver.receive()` starts takes `None` from `get()`
    and exits before it creates a decoder. `frames_put` counts encoded frames aiortc
    handed over for decoding: it stays 0 while the tap is installed.
    """

    def __init__(self) -> None:
        self.frames_put = 0
        self.gets = 0

    def get(self, *args: Any, **kwargs: Any) -> None:
        self.gets += 1
        return None

    def put(self, item: object, *args: Any, **kwargs: Any) -> None:
        if item is not None:
            self.frames_put += 1


def intercept_receiver(receiver: RTCRtpReceiver, on_packet: PacketHandler) -> DecoderQueueStub:
    """Route a receiver's packets to `on_packet` and make sure nothing is ever decoded.

    Must be called before `receive()` starts (in the peer connection's ``track`` event).
    """
    for name in (RX_JITTER_BUFFER, RX_DECODER_QUEUE, RX_DECODER_THREAD):
        require(receiver, name)
    if getattr(receiver, RX_DECODER_THREAD) is not None:
        raise AdapterError("receiver already started: intercept it in the 'track' event")
    stub = DecoderQueueStub()
    setattr(receiver, RX_JITTER_BUFFER, _PacketTap(on_packet))
    setattr(receiver, RX_DECODER_QUEUE, stub)
    return stub


def is_intercepted(receiver: RTCRtpReceiver) -> bool:
    """True when `intercept_receiver` was applied to this receiver."""
    return isinstance(getattr(receiver, RX_DECODER_QUEUE, None), DecoderQueueStub) and isinstance(
        getattr(receiver, RX_JITTER_BUFFER, None), _PacketTap
    )


def release_receive_state(receiver: RTCRtpReceiver) -> None:
    """Free what a receiver that will never receive holds (a ``sendonly`` m-section of
    ours): aiortc gives every video receiver a bandwidth estimator (~96 kB: a thousand
    rate buckets) and a NACK generator. Without them it behaves like an audio receiver."""
    for name in (RX_NACK_GENERATOR, RX_BITRATE_ESTIMATOR):
        require(receiver, name)
        setattr(receiver, name, None)


def add_sendonly_transceiver(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpTransceiver:
    """`pc.addTransceiver(track, direction="sendonly")`, minus the receive state
    `release_receive_state` would free at once: building a video receiver's bandwidth
    estimator alone (a thousand rate buckets) takes 1-2 ms, for every m-section of
    every subscriber."""
    require(aiortc_rtcrtpreceiver, RX_ESTIMATOR_CLASS)
    original = getattr(aiortc_rtcrtpreceiver, RX_ESTIMATOR_CLASS)
    setattr(aiortc_rtcrtpreceiver, RX_ESTIMATOR_CLASS, _no_estimator)
    try:
        transceiver = pc.addTransceiver(track, direction="sendonly")
    finally:
        setattr(aiortc_rtcrtpreceiver, RX_ESTIMATOR_CLASS, original)
    release_receive_state(transceiver.receiver)
    return transceiver


def _no_estimator() -> None:
    return None


def receive_state_released(receiver: RTCRtpReceiver) -> bool:
    """True when `release_receive_state` left nothing to free."""
    return all(getattr(receiver, n) is None for n in (RX_NACK_GENERATOR, RX_BITRATE_ESTIMATOR))


def decoder_thread(receiver: RTCRtpReceiver) -> threading.Thread | None:
    """The receiver's decoder thread, if `receive()` started one."""
    thread = getattr(receiver, RX_DECODER_THREAD)
    assert thread is None or isinstance(thread, threading.Thread)
    return thread


def decoder_queue(receiver: RTCRtpReceiver) -> object:
    """The receiver's decoder queue (a `DecoderQueueStub` once intercepted)."""
    return getattr(receiver, RX_DECODER_QUEUE)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send one RTCP PLI for `media_ssrc` to the remote sender of this receiver."""
    await getattr(receiver, RX_SEND_PLI)(media_ssrc)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrcs: list[int]) -> None:
    """Send one standalone RTCP REMB of `bitrate` for `media_ssrcs` from this receiver (as
    aiortc's estimator does, up to once a packet when it sees overuse)."""
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=0, media_ssrc=0, fci=pack_remb_fci(bitrate, media_ssrcs)
    )
    await getattr(receiver, RX_SEND_RTCP)(packet)


class NackCounter:
    """Counts the sequence numbers a receiver NACKs to its remote sender.

    aiortc's receiver calls ``_send_rtcp_nack(media_ssrc, lost)`` with every sequence
    number still missing whenever a new gap appears (video only), so a packet missing
    across two gaps is counted twice. Get one with `nack_counter`.
    """

    __slots__ = ("_send", "sequence_numbers")

    def __init__(self, send: Callable[[int, list[int]], Any]) -> None:
        self._send = send
        self.sequence_numbers = 0

    async def send(self, media_ssrc: int, lost: list[int]) -> None:
        self.sequence_numbers += len(lost)
        await self._send(media_ssrc, lost)


def nack_counter(receiver: RTCRtpReceiver) -> NackCounter:
    """The `NackCounter` of `receiver`, installed on first use (one per receiver, however
    many producers it carries in turn)."""
    require(receiver, RX_SEND_NACK)
    current = getattr(receiver, RX_SEND_NACK)
    owner = getattr(current, "__self__", None)
    if isinstance(owner, NackCounter):
        return owner
    counter = NackCounter(current)
    setattr(receiver, RX_SEND_NACK, counter.send)
    return counter


REMB_FRESH = 3.0
"""Seconds a receiver's last REMB counts towards its connection's sum."""


class RembSum:
    """The REMB a publish connection sends upstream: the sum of what its video receivers
    estimate (aiortc runs one estimator per receiver and sends each one's REMB alone).

    Install on each video receiver with `sum_remb`; every REMB a receiver sends then
    carries the sum of the connection's fresh estimates and all their SSRCs.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._estimates: dict[int, tuple[int, list[int], float]] = {}
        """id(receiver) -> (bitrate, ssrcs, when)."""

    def add(self, receiver_key: int, bitrate: int, ssrcs: list[int]) -> tuple[int, list[int]]:
        """Record one receiver's estimate; returns the connection's (sum, SSRCs)."""
        now = self._clock()
        self._estimates[receiver_key] = (bitrate, ssrcs, now)
        total, all_ssrcs = 0, []
        for key, (rate, sources, at) in list(self._estimates.items()):
            if now - at > REMB_FRESH:
                del self._estimates[key]
                continue
            total += rate
            all_ssrcs += sources
        return total, sorted(set(all_ssrcs))


def sum_remb(receiver: RTCRtpReceiver, remb: RembSum) -> None:
    """Make `receiver`'s upstream REMB carry `remb`'s sum (see `RembSum`)."""
    require(receiver, RX_SEND_RTCP)
    send = getattr(receiver, RX_SEND_RTCP)
    key = id(receiver)

    async def send_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                total, all_ssrcs = remb.add(key, bitrate, ssrcs)
                packet = RtcpPsfbPacket(
                    fmt=RTCP_PSFB_APP,
                    ssrc=packet.ssrc,
                    media_ssrc=packet.media_ssrc,
                    fci=pack_remb_fci(total, all_ssrcs),
                )
        await send(packet)

    setattr(receiver, RX_SEND_RTCP, send_rtcp)

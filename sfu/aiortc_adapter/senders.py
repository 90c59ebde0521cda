"""Senders: keyframe requests and msid, the stock send path's counters, and what the
direct send path (`sfu.direct_send`) takes over from an `RTCRtpSender`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiortc import RTCRtpSender
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtcpByePacket, RtpPacket

from sfu.aiortc_adapter.internals import (
    TX_ENCODER,
    TX_FIELDS,
    TX_LSR,
    TX_LSR_TIME,
    TX_RETRANSMIT,
    TX_RTCP_EXITED,
    TX_RTCP_STARTED,
    TX_RTCP_TASK,
    TX_RTP_HISTORY,
    TX_RTX_SSRC,
    TX_RUN_RTCP,
    TX_SEND_KEYFRAME,
    TX_SEND_RTCP,
    TX_SR_OCTETS,
    TX_SR_PACKETS,
    TX_SSRC,
    TX_STREAM_ID,
    TX_TRACK_ID,
    require,
    require_field,
)
from sfu.stats import SendCounts

Retransmit = Callable[[int], Awaitable[None]]
"""Answers a NACK for one sequence number (what aiortc's sender calls per NACKed one)."""


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever the remote receiver of `sender` sends a PLI or FIR.

    aiortc would only set a flag that its encoder reads; for forwarded (or pre-encoded)
    media the request has to reach whoever can produce a keyframe.
    """
    require(sender, TX_SEND_KEYFRAME)
    setattr(sender, TX_SEND_KEYFRAME, callback)


def use_packer(sender: RTCRtpSender, packer: Encoder) -> None:
    """Packetize what `sender`'s track gives with `packer` instead of aiortc's encoder
    for the codec (set before the first frame: aiortc makes its own on the first one)."""
    require_field(RTCRtpSender, TX_ENCODER)
    setattr(sender, TX_ENCODER, packer)


def set_msid(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """Set the ``a=msid:<stream> <track>`` the next offer carries for this sender."""
    require(sender, TX_STREAM_ID)
    require(sender, TX_TRACK_ID)
    setattr(sender, TX_STREAM_ID, stream_id)
    setattr(sender, TX_TRACK_ID, track_id)


class SenderCounters:
    """`SendCounts` of a stock `RTCRtpSender` (the ``aiortc`` send path).

    Packets and payload bytes are the sender's own sender-report counters; its
    ``_retransmit`` is wrapped to count NACKed sequence numbers, and those still in its
    history (which aiortc re-sends).
    """

    def __init__(self, sender: RTCRtpSender) -> None:
        for name in (TX_SR_PACKETS, TX_SR_OCTETS, TX_RTP_HISTORY, TX_RETRANSMIT):
            require(sender, name)
        self._sender = sender
        self._retransmit: Retransmit = getattr(sender, TX_RETRANSMIT)
        self.nacks_received = 0
        self.retransmissions = 0
        setattr(sender, TX_RETRANSMIT, self.retransmit)

    async def retransmit(self, sequence_number: int) -> None:
        self.nacks_received += 1
        history: dict[int, RtpPacket] = getattr(self._sender, TX_RTP_HISTORY)
        packet = history.get(sequence_number % RTP_HISTORY_SIZE)
        await self._retransmit(sequence_number)
        if packet is not None and packet.sequence_number == sequence_number:
            self.retransmissions += 1

    def counts(self) -> SendCounts:
        sender = self._sender
        return SendCounts(
            getattr(sender, TX_SR_PACKETS),
            getattr(sender, TX_SR_OCTETS),
            self.nacks_received,
            self.retransmissions,
        )


# --------------------------------------------------------------------------- direct send path


def take_over_sending(
    sender: RTCRtpSender,
    *,
    on_send: Callable[[RTCRtpSendParameters], None],
    on_stop: Callable[[], None],
    retransmit: Retransmit,
) -> tuple[int, int]:
    """Prepare `sender` for a direct sender that sends its packets itself.

    aiortc keeps the rest: its RTP task idles on a track that never yields; NACKs go to
    `retransmit` (installed as the sender's ``_retransmit``); the per-sender RTCP task
    becomes an idle stand-in that only sends the BYE when the sender stops (sender
    reports are sent per connection instead, `record_sender_report` keeps what aiortc's
    task would have recorded). `on_send(parameters)` is called once ``send()`` has
    applied the negotiated parameters (the transport is up), `on_stop()` when ``stop()``
    starts. Returns the sender's (SSRC, RTX SSRC).
    """
    for name in (*TX_FIELDS, TX_RETRANSMIT, TX_RUN_RTCP, TX_SEND_RTCP, "send", "stop"):
        require(sender, name)
    original_send = sender.send
    original_stop = sender.stop

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original_send(parameters)
        on_send(parameters)

    async def stop() -> None:
        on_stop()
        await original_stop()

    setattr(sender, "send", send)  # noqa: B010
    setattr(sender, "stop", stop)  # noqa: B010
    setattr(sender, TX_RETRANSMIT, retransmit)
    ssrc: int = getattr(sender, TX_SSRC)
    rtx_ssrc: int = getattr(sender, TX_RTX_SSRC)
    setattr(sender, TX_RUN_RTCP, _IdleRtcp(sender, ssrc).run)
    return ssrc, rtx_ssrc


class _IdleRtcp:
    """Stands in for aiortc's per-sender RTCP task: idle until ``stop()`` cancels it,
    then the BYE, setting the two events ``stop()`` waits for."""

    __slots__ = ("_sender", "_ssrc")

    def __init__(self, sender: RTCRtpSender, ssrc: int) -> None:
        self._sender = sender
        self._ssrc = ssrc

    async def run(self) -> None:
        sender = self._sender
        getattr(sender, TX_RTCP_STARTED).set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        try:
            await getattr(sender, TX_SEND_RTCP)([RtcpByePacket(sources=[self._ssrc])])
        finally:
            getattr(sender, TX_RTCP_EXITED).set()


def runs_idle_rtcp(sender: RTCRtpSender) -> bool:
    """True when the RTCP task aiortc started for `sender` is the idle stand-in
    `take_over_sending` installed (no wake-ups per sender)."""
    task = getattr(sender, TX_RTCP_TASK)
    coroutine = task.get_coro() if task is not None else None
    return getattr(coroutine, "cr_code", None) is _IdleRtcp.run.__code__


def record_sender_report(
    sender: RTCRtpSender, lsr: int, lsr_time: float, packets: int, octets: int
) -> None:
    """Record on `sender` what its RTCP task would have after sending a sender report:
    the counts (its ``getStats()``) and the report's NTP middle bits and time (so that it
    still computes the round trip time from the subscriber's receiver reports)."""
    setattr(sender, TX_LSR, lsr)
    setattr(sender, TX_LSR_TIME, lsr_time)
    setattr(sender, TX_SR_PACKETS, packets)
    setattr(sender, TX_SR_OCTETS, octets)


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC `sender` sends media with."""
    ssrc: int = getattr(sender, TX_SSRC)
    return ssrc

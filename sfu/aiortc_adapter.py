"""The one module that touches aiortc / aioice internals.

Everything else in `sfu` (and the synthetic peer) goes through these functions. The
versions below are pinned in pyproject.toml; `tests/sfu/test_adapter_canary.py` fails
loudly when the internals we rely on move. Checks happen at import: assigning a renamed
name-mangled attribute would silently create a new one, and aiortc would go back to
decoding every frame without anyone noticing.

What we rely on, and why:
- `RTCRtpReceiver.__jitter_buffer`: replaced by a tap that hands each depayloaded packet
  to the forwarder (frames are assembled and released on the RTP marker bit by
  `sfu.assembler`), and never returns a frame, so nothing reaches the decoder.
- `RTCRtpReceiver.__decoder_queue`: replaced by a stub whose `get()` returns `None`, so
  the decoder thread `receive()` starts exits at once without creating a decoder.
- `RTCRtpReceiver._send_rtcp_pli`: upstream keyframe requests.
- `RTCRtpReceiver.__nack_generator` / `__remote_bitrate_estimator`: set to `None` (what
  aiortc does for audio) on the receivers of our sendonly subscribe m-sections, which
  never receive: the estimator alone is ~96 kB per video m-section. So that it is not
  even built (1-2 ms each), `add_sendonly_transceiver` swaps the module's
  `rtcrtpreceiver.RemoteBitrateEstimator` for the duration of one `addTransceiver`.
- `RTCRtpReceiver._send_rtcp_nack`: wrapped per receiver (`NackCounter`) to count the
  sequence numbers NACKed upstream to a publisher.
- `RTCRtpSender._send_keyframe`: called by aiortc on a subscriber's PLI/FIR; overridden
  per sender to reach our keyframe policy.
- `RTCRtpSender._stream_id` / `_track_id`: the msid written into the subscribe offer.
- `RtpPacket._data`: the depayloaded payload set by the receiver.
- The direct send path (`DirectRtpSender`, see its docstring): the sender's `_ssrc`,
  `_rtx_ssrc`, `_retransmit`; its `_run_rtcp` (replaced per sender: sender reports are
  sent per connection by `SenderReports`), the `__rtcp_started` / `__rtcp_exited`
  events `stop()` waits for, `_send_rtcp` (the BYE), and what its RTCP task would have
  recorded (`__packet_count`, `__octet_count`, `__lsr`, `__lsr_time`: stats and round
  trip time); the DTLS transport's `_state` and `_tx_srtp`; the ICE transport's
  `_connection` and aioice's `_nominated`; pylibsrtp's session buffer (`_cdata`,
  `_srtp`), to protect without allocating.
- The stock send path (`SenderCounters`): the sender's `__packet_count` / `__octet_count`
  (forwarded packets and payload bytes), its `_retransmit` (wrapped to count NACKed
  sequence numbers) and its `__rtp_history` (whether a NACK was answered).
- The synchronous receive path (`receive_media_synchronously`): aioice `Connection`'s
  `data_received` (replaced per connection) and `_queue` (media waits behind anything
  queued), the DTLS transport's `_rx_srtp`, `_handle_rtp_data` and `_handle_rtcp_data`;
  the connection's `_protocols`, whose `StunProtocol.datagram_received` is wrapped per
  protocol (`_MediaFirst`: media skips aioice's attempt to parse it as STUN).
- Control reads (`ControlReads`), asyncio rather than aiortc internals: a selector
  loop's `_remove_reader` (the public `remove_reader` refuses a transport's descriptor)
  and a UDP transport's `_sock_fd`, `_loop` and `_read_ready` (reads one datagram into
  its protocol); aioice's `StunProtocol.transport`.
- `RTCIceGatherer._connection` and aioice `Connection` gathering fields: host candidates
  on configured addresses (aioice skips loopback) and within a UDP port range.
- aioice's `turn.TurnTransport` (the transport of a relayed candidate: no socket, no
  `is_closing()`, `sendto()` relays through the TURN client) and the connection's
  `turn_transport` / `turn_ssl`: the direct send path over a relayed pair, and
  `selected_pair()` reporting how a relayed pair reaches its TURN server.
- `RTCPeerConnection.__connect`: the task aiortc starts (and never awaits) after each
  description; `PeerConnection` overrides it to retrieve its errors (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import select
import socket
import struct
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import aioice
import aiortc
import pylibsrtp
from aioice import Candidate, Connection, TransportPolicy
from aioice import ice as aioice_ice
from aioice import turn as aioice_turn
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc import clock as aiortc_clock
from aiortc import rtcrtpreceiver as aiortc_rtcrtpreceiver
from aiortc.exceptions import InvalidStateError
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtcpByePacket, RtpPacket, is_rtcp
from pylibsrtp import _binding as srtp_binding

from sfu import native_send
from sfu.errors import AdapterError
from sfu.payloads import RtpPayloads
from sfu.rtcp import (
    ReportBlock,
    SenderReport,
    compound_packets,
    last_sr,
    ntp_timestamp,
    receiver_report_blocks,
)

logger = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

_RX_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RX_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_RX_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_RX_SEND_PLI = "_send_rtcp_pli"
_RX_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_RX_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RX_SEND_NACK = "_send_rtcp_nack"
_RX_ESTIMATOR_CLASS = "RemoteBitrateEstimator"
_TX_SEND_KEYFRAME = "_send_keyframe"
_TX_STREAM_ID = "_stream_id"
_TX_TRACK_ID = "_track_id"
_TX_SSRC = "_ssrc"
_TX_RTX_SSRC = "_rtx_ssrc"
_TX_RETRANSMIT = "_retransmit"
_TX_SR_PACKETS = "_RTCRtpSender__packet_count"
_TX_SR_OCTETS = "_RTCRtpSender__octet_count"
_TX_LSR = "_RTCRtpSender__lsr"
_TX_LSR_TIME = "_RTCRtpSender__lsr_time"
_TX_RTCP_STARTED = "_RTCRtpSender__rtcp_started"
_TX_RTCP_EXITED = "_RTCRtpSender__rtcp_exited"
_TX_FIELDS = (
    _TX_SSRC,
    _TX_RTX_SSRC,
    _TX_SR_PACKETS,
    _TX_SR_OCTETS,
    _TX_LSR,
    _TX_LSR_TIME,
    _TX_RTCP_STARTED,
    _TX_RTCP_EXITED,
)
_TX_RUN_RTCP = "_run_rtcp"
_TX_SEND_RTCP = "_send_rtcp"
_TX_RTP_HISTORY = "_RTCRtpSender__rtp_history"
_DTLS_STATE = "_state"
_DTLS_TX_SRTP = "_tx_srtp"
_DTLS_RX_SRTP = "_rx_srtp"
_ICE_DATA_RECEIVED = "data_received"
_ICE_QUEUE = "_queue"
_ICE_PROTOCOLS = "_protocols"
_LOOP_REMOVE_READER = "_remove_reader"
_TRANSPORT_READ_READY = "_read_ready"
_TRANSPORT_SOCK_FD = "_sock_fd"
_TRANSPORT_LOOP = "_loop"
_PC_CERTIFICATES = "_RTCPeerConnection__certificates"
_ICE_NOMINATED = "_nominated"
_SRTP_SESSION_FIELDS = ("_cdata", "_srtp")
_GATHERER_CONNECTION = "_connection"
_ICE_CONNECTION_FIELDS = (
    "_local_candidates",
    "_local_candidates_start",
    "_local_candidates_end",
    "_protocols",
    "_components",
    "_transport_policy",
    "_use_ipv4",
    "_use_ipv6",
    "stun_server",
    "turn_server",
    "turn_ssl",
    "turn_transport",
)
_ICE_CONNECTION_METHODS = ("gather_candidates", "get_component_candidates")
_AIOICE_MODULE_NAMES = ("StunProtocol", "server_reflexive_candidate", "get_host_addresses")
_PC_CONNECT = "_RTCPeerConnection__connect"


def _require(obj: object, name: str) -> None:
    if not hasattr(obj, name):
        raise AdapterError(
            f"{type(obj).__name__} has no attribute {name!r}: aiortc/aioice internals changed "
            f"(tested with aiortc {AIORTC_VERSION}, aioice {AIOICE_VERSION}); "
            "run tests/sfu/test_adapter_canary.py"
        )


def _require_field(cls: type, name: str) -> None:
    """`cls.__init__` assigns instance attribute `name` (checked without an instance:
    an `RTCRtpSender` needs an event loop)."""
    code = getattr(vars(cls).get("__init__"), "__code__", None)
    if code is None or name not in code.co_names:
        raise AdapterError(
            f"{cls.__name__}.__init__ no longer sets {name!r}: aiortc/aioice internals changed "
            f"(tested with aiortc {AIORTC_VERSION}, aioice {AIOICE_VERSION}); "
            "run tests/sfu/test_adapter_canary.py"
        )


class _ProbeTransport:
    state = "new"


def check_internals() -> None:
    """Raise `AdapterError` if any internal this module relies on is missing."""
    receiver = RTCRtpReceiver("video", _ProbeTransport())  # type: ignore[arg-type]
    for name in (
        _RX_JITTER_BUFFER,
        _RX_DECODER_QUEUE,
        _RX_DECODER_THREAD,
        _RX_SEND_PLI,
        _RX_NACK_GENERATOR,
        _RX_BITRATE_ESTIMATOR,
        _RX_SEND_NACK,
    ):
        _require(receiver, name)
    _require(aiortc_rtcrtpreceiver, _RX_ESTIMATOR_CLASS)
    _require(RTCRtpSender, _TX_SEND_KEYFRAME)
    _require(RTCRtpSender, _TX_RETRANSMIT)
    _require(RTCRtpSender, _TX_RUN_RTCP)
    _require(RTCRtpSender, _TX_SEND_RTCP)
    for name in (*_TX_FIELDS, _TX_RTP_HISTORY):
        _require_field(RTCRtpSender, name)
    _require(RTCRtpSender, "replaceTrack")
    _require(RTCPeerConnection, _PC_CONNECT)
    _require_field(RTCPeerConnection, _PC_CERTIFICATES)
    gatherer = RTCIceGatherer(iceServers=[])
    ice = RTCIceTransport(gatherer)
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    for name in (
        _DTLS_STATE,
        _DTLS_TX_SRTP,
        _DTLS_RX_SRTP,
        "_handle_rtp_data",
        "_handle_rtcp_data",
    ):
        _require(dtls, name)
    _require(gatherer, _GATHERER_CONNECTION)
    connection = getattr(gatherer, _GATHERER_CONNECTION)
    for name in (
        *_ICE_CONNECTION_FIELDS,
        *_ICE_CONNECTION_METHODS,
        _ICE_NOMINATED,
        _ICE_DATA_RECEIVED,
        _ICE_QUEUE,
    ):
        _require(connection, name)
    _require(ice, _GATHERER_CONNECTION)
    for name in _AIOICE_MODULE_NAMES:
        _require(aioice_ice, name)
    _require(srtp_binding.lib, "srtp_protect")
    _require(pylibsrtp, "SRTP_MAX_TRAILER_LEN")
    _require(pylibsrtp, "ERRORS")
    session = pylibsrtp.Session()
    for name in _SRTP_SESSION_FIELDS:
        _require(session, name)
    _require(aioice_turn, "UDP_SOCKET_BUFFER_SIZE")
    _require(aioice_turn, "TurnTransport")
    for name in ("sendto", "get_extra_info"):
        _require(aioice_turn.TurnTransport, name)


def _check_versions() -> None:
    found = (aiortc.__version__, aioice.__version__)
    if found != (AIORTC_VERSION, AIOICE_VERSION):
        warnings.warn(
            f"sfu.aiortc_adapter was tested with aiortc {AIORTC_VERSION} / aioice "
            f"{AIOICE_VERSION}, found {found[0]} / {found[1]}: run the adapter canary test",
            RuntimeWarning,
            stacklevel=2,
        )


check_internals()
_check_versions()


# --------------------------------------------------------------------------- peer connections


class PeerConnection(RTCPeerConnection):
    """An `RTCPeerConnection` whose connect task retrieves its own errors, and whose
    certificate fingerprints are computed once.

    aiortc's `setLocalDescription` / `setRemoteDescription` start `__connect()` (ICE,
    then DTLS, transceiver after transceiver) with `asyncio.ensure_future` and keep no
    handle. Closed mid-handshake (a participant leaving while connecting), that task
    trips over the transports `close()` stopped: the DTLS handshake fails and the next
    transceiver's `RTCIceTransport.start()` raises ``InvalidStateError("RTCIceTransport
    is closed")``, which asyncio reports as "Task exception was never retrieved" once the
    task is collected. Here that expected case is logged at DEBUG; any other error of the
    task is logged as an error (nothing else ever retrieves it).

    aiortc recomputes three certificate digests for every m-section of every
    description it writes (`createOffer` with 62 m-sections: 3.2 ms, 1.35 ms without);
    the connection's one certificate never changes, so its `getFingerprints()` answers
    from a list computed here.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for certificate in getattr(self, _PC_CERTIFICATES):
            fingerprints = tuple(certificate.getFingerprints())
            certificate.getFingerprints = lambda known=fingerprints: list(known)

    async def _RTCPeerConnection__connect(self) -> None:
        try:
            await getattr(super(), _PC_CONNECT)()
        except Exception as exc:
            if self.signalingState == "closed" and isinstance(
                exc, InvalidStateError | ConnectionError
            ):
                logger.debug(
                    "peer connection closed while connecting: %s: %s", type(exc).__name__, exc
                )
            else:
                logger.error("connecting a peer connection failed", exc_info=exc)


# --------------------------------------------------------------------------- receivers

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
    for name in (_RX_JITTER_BUFFER, _RX_DECODER_QUEUE, _RX_DECODER_THREAD):
        _require(receiver, name)
    if getattr(receiver, _RX_DECODER_THREAD) is not None:
        raise AdapterError("receiver already started: intercept it in the 'track' event")
    stub = DecoderQueueStub()
    setattr(receiver, _RX_JITTER_BUFFER, _PacketTap(on_packet))
    setattr(receiver, _RX_DECODER_QUEUE, stub)
    return stub


def is_intercepted(receiver: RTCRtpReceiver) -> bool:
    """True when `intercept_receiver` was applied to this receiver."""
    return isinstance(getattr(receiver, _RX_DECODER_QUEUE, None), DecoderQueueStub) and isinstance(
        getattr(receiver, _RX_JITTER_BUFFER, None), _PacketTap
    )


def release_receive_state(receiver: RTCRtpReceiver) -> None:
    """Free what a receiver that will never receive holds (a ``sendonly`` m-section of
    ours): aiortc gives every video receiver a bandwidth estimator (~96 kB: a thousand
    rate buckets) and a NACK generator. Without them it behaves like an audio receiver."""
    for name in (_RX_NACK_GENERATOR, _RX_BITRATE_ESTIMATOR):
        _require(receiver, name)
        setattr(receiver, name, None)


def add_sendonly_transceiver(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpTransceiver:
    """`pc.addTransceiver(track, direction="sendonly")`, minus the receive state
    `release_receive_state` would free at once: building a video receiver's bandwidth
    estimator alone (a thousand rate buckets) takes 1-2 ms, for every m-section of
    every subscriber."""
    _require(aiortc_rtcrtpreceiver, _RX_ESTIMATOR_CLASS)
    original = getattr(aiortc_rtcrtpreceiver, _RX_ESTIMATOR_CLASS)
    setattr(aiortc_rtcrtpreceiver, _RX_ESTIMATOR_CLASS, _no_estimator)
    try:
        transceiver = pc.addTransceiver(track, direction="sendonly")
    finally:
        setattr(aiortc_rtcrtpreceiver, _RX_ESTIMATOR_CLASS, original)
    release_receive_state(transceiver.receiver)
    return transceiver


def _no_estimator() -> None:
    return None


def receive_state_released(receiver: RTCRtpReceiver) -> bool:
    """True when `release_receive_state` left nothing to free."""
    return all(getattr(receiver, n) is None for n in (_RX_NACK_GENERATOR, _RX_BITRATE_ESTIMATOR))


def decoder_thread(receiver: RTCRtpReceiver) -> threading.Thread | None:
    """The receiver's decoder thread, if `receive()` started one."""
    thread = getattr(receiver, _RX_DECODER_THREAD)
    assert thread is None or isinstance(thread, threading.Thread)
    return thread


def decoder_queue(receiver: RTCRtpReceiver) -> object:
    """The receiver's decoder queue (a `DecoderQueueStub` once intercepted)."""
    return getattr(receiver, _RX_DECODER_QUEUE)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send one RTCP PLI for `media_ssrc` to the remote sender of this receiver."""
    await getattr(receiver, _RX_SEND_PLI)(media_ssrc)


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
    _require(receiver, _RX_SEND_NACK)
    current = getattr(receiver, _RX_SEND_NACK)
    owner = getattr(current, "__self__", None)
    if isinstance(owner, NackCounter):
        return owner
    counter = NackCounter(current)
    setattr(receiver, _RX_SEND_NACK, counter.send)
    return counter


# --------------------------------------------------------------------------- senders


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever the remote receiver of `sender` sends a PLI or FIR.

    aiortc would only set a flag that its encoder reads; for forwarded (or pre-encoded)
    media the request has to reach whoever can produce a keyframe.
    """
    _require(sender, _TX_SEND_KEYFRAME)
    setattr(sender, _TX_SEND_KEYFRAME, callback)


def set_msid(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """Set the ``a=msid:<stream> <track>`` the next offer carries for this sender."""
    _require(sender, _TX_STREAM_ID)
    _require(sender, _TX_TRACK_ID)
    setattr(sender, _TX_STREAM_ID, stream_id)
    setattr(sender, _TX_TRACK_ID, track_id)


class LinkQuality(NamedTuple):
    """How the subscriber's receiver reports describe one forwarded stream."""

    round_trip_time: float | None
    """Seconds, smoothed like aiortc does (None before a report answered an SR)."""
    fraction_lost: float | None
    """Share of packets lost since the subscriber's previous report (0..1)."""
    packets_lost: int | None
    """Cumulative packets lost, as the subscriber counts them."""
    jitter: float | None
    """Interarrival jitter in seconds."""


NO_LINK = LinkQuality(None, None, None, None)


class SendCounts(NamedTuple):
    """What one subscriber m-section's sender has sent so far."""

    packets: int
    """RTP media packets sent (first transmissions; retransmissions not included)."""
    payload_bytes: int
    """RTP payload bytes of those packets (no RTP header, SRTP trailer or RTX)."""
    nacks: int
    """Sequence numbers the subscriber NACKed (a repeated NACK counts again)."""
    retransmissions: int
    """Packets re-sent answering those NACKs (still in the send history)."""

    def since(self, start: SendCounts) -> SendCounts:
        return SendCounts(
            self.packets - start.packets,
            self.payload_bytes - start.payload_bytes,
            self.nacks - start.nacks,
            self.retransmissions - start.retransmissions,
        )


NO_SENDS = SendCounts(0, 0, 0, 0)


class SenderCounters:
    """`SendCounts` of a stock `RTCRtpSender` (the ``aiortc`` send path).

    Packets and payload bytes are the sender's own sender-report counters; its
    ``_retransmit`` is wrapped to count NACKed sequence numbers, and those still in its
    history (which aiortc re-sends).
    """

    def __init__(self, sender: RTCRtpSender) -> None:
        for name in (_TX_SR_PACKETS, _TX_SR_OCTETS, _TX_RTP_HISTORY, _TX_RETRANSMIT):
            _require(sender, name)
        self._sender = sender
        self._retransmit: Callable[[int], Any] = getattr(sender, _TX_RETRANSMIT)
        self.nacks_received = 0
        self.retransmissions = 0
        setattr(sender, _TX_RETRANSMIT, self.retransmit)

    async def retransmit(self, sequence_number: int) -> None:
        self.nacks_received += 1
        history: dict[int, RtpPacket] = getattr(self._sender, _TX_RTP_HISTORY)
        packet = history.get(sequence_number % RTP_HISTORY_SIZE)
        await self._retransmit(sequence_number)
        if packet is not None and packet.sequence_number == sequence_number:
            self.retransmissions += 1

    def counts(self) -> SendCounts:
        sender = self._sender
        return SendCounts(
            getattr(sender, _TX_SR_PACKETS),
            getattr(sender, _TX_SR_OCTETS),
            self.nacks_received,
            self.retransmissions,
        )


# --------------------------------------------------------------------------- receive path


def receive_media_synchronously(pc: RTCPeerConnection) -> int:
    """Handle `pc`'s SRTP and SRTCP datagrams as they arrive, in the socket's callback.

    aioice puts every datagram on a queue that the DTLS transport's task drains: two
    event-loop hand-offs per packet, the larger part of what a received packet costs.
    Once the DTLS handshake has keyed SRTP, media datagrams go straight to the DTLS
    transport's own `_handle_rtp_data` / `_handle_rtcp_data` (what its task would call
    next); DTLS records, and everything before the keys exist, still take the queue.
    Call it when the transports exist (after the first offer/answer is applied); returns
    the number of ICE connections changed (0 when already done).
    """
    changed = 0
    for dtls, connection in _ice_connections(pc):
        original = getattr(connection, _ICE_DATA_RECEIVED)
        if isinstance(original, _SrtpShortcut):
            continue
        pending = getattr(connection, _ICE_QUEUE)
        shortcut = _SrtpShortcut(
            dtls, original, pending, ControlReads.of(asyncio.get_running_loop())
        )
        setattr(connection, _ICE_DATA_RECEIVED, shortcut)
        for protocol in getattr(connection, _ICE_PROTOCOLS):
            candidate = getattr(protocol, "local_candidate", None)
            if candidate is not None and not isinstance(protocol.datagram_received, _MediaFirst):
                protocol.datagram_received = _MediaFirst(
                    protocol.datagram_received, shortcut, candidate.component
                )
        changed += 1
    return changed


def _ice_connections(pc: RTCPeerConnection) -> list[tuple[RTCDtlsTransport, Connection]]:
    """Each DTLS transport of `pc` (one with BUNDLE) and the aioice connection under it."""
    found: dict[int, tuple[RTCDtlsTransport, Connection]] = {}
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is not None and id(dtls) not in found:
            found[id(dtls)] = (dtls, getattr(dtls.transport, _GATHERER_CONNECTION))
    return list(found.values())


class _MediaFirst:
    """A `StunProtocol.datagram_received` that hands (S)RTP and (S)RTCP, whose first
    byte is 128-191, straight to the connection's receiver; aioice first tries to parse
    every datagram as STUN, and a STUN message's first byte is below 64."""

    __slots__ = ("_component", "_media", "_other")

    def __init__(
        self,
        other: Callable[[bytes, Any], None],
        media: Callable[[bytes, int], None],
        component: int,
    ) -> None:
        self._other = other
        self._media = media
        self._component = component

    def __call__(self, data: bytes, addr: Any) -> None:
        if data and 127 < data[0] < 192:
            self._media(data, self._component)
        else:
            self._other(data, addr)


class _SrtpShortcut:
    """An aioice `Connection.data_received` that handles keyed SRTP/SRTCP itself."""

    __slots__ = ("_dtls", "_pending", "_queue", "_reads")

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        queue: Callable[[bytes, int], None],
        pending: asyncio.Queue[Any],
        reads: ControlReads,
    ) -> None:
        self._dtls = dtls
        self._queue = queue
        self._pending = pending
        self._reads = reads

    def __call__(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        srtp = getattr(dtls, _DTLS_RX_SRTP)
        # Anything still queued goes first (packets that arrived while SRTP was being
        # keyed): taking a shortcut past them would reorder the stream.
        if srtp is None or not data or not 127 < data[0] < 192 or not self._pending.empty():
            self._queue(data, component)
            return
        rtcp = is_rtcp(data)
        if not rtcp:
            self._reads.on_media()
        try:
            if rtcp:
                plain = srtp.unprotect_rtcp(data)
                reports = SenderReports.known(dtls)
                if reports is not None and reports.take_receiver_reports(plain):
                    return
                step = dtls._handle_rtcp_data(plain)
            else:
                arrival_time_ms = aiortc_clock.current_ms()
                step = dtls._handle_rtp_data(srtp.unprotect(data), arrival_time_ms=arrival_time_ms)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return
        run_to_completion(step)


def run_to_completion(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` now, in the caller's stack; if it has to wait (a send that
    blocks, e.g. over TURN/TCP), the rest runs like a task. Errors are logged."""
    try:
        waiting = coroutine.send(None)
    except StopIteration:
        return
    except Exception:
        logger.exception("handling a received packet failed")
        return
    _Resumer(coroutine).wait(waiting)


class _Resumer:
    """Steps a coroutine that had to wait, the way an asyncio Task would."""

    __slots__ = ("_coroutine",)

    def __init__(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._coroutine = coroutine

    def wait(self, waiting: object) -> None:
        if isinstance(waiting, asyncio.Future):
            waiting._asyncio_future_blocking = False
            waiting.add_done_callback(self._step)
        else:  # a bare yield (asyncio.sleep(0))
            asyncio.get_running_loop().call_soon(self._step, None)

    def _step(self, _done: object) -> None:
        try:
            waiting = self._coroutine.send(None)
        except StopIteration:
            return
        except Exception:
            logger.exception("handling a received packet failed")
            return
        self.wait(waiting)


# --------------------------------------------------------------------------- control reads

_POLL_INTERVAL = 0.01  # most often a media packet polls the control sockets
_IDLE_AFTER = 0.1  # no media for this long: control datagrams wake the loop again
_WATCHDOG_PERIOD = 0.5
_POLL_ROUNDS = 4  # datagrams read per socket and poll, at most


def defer_control_reads(pc: RTCPeerConnection) -> int:
    """Read the UDP sockets of `pc` when the event loop is awake anyway (see
    `ControlReads`). For a connection that receives no media: a subscribe connection,
    once connected. Relayed candidates are left alone. Returns the sockets deferred."""
    loop = asyncio.get_running_loop()
    if not hasattr(loop, _LOOP_REMOVE_READER):
        return 0  # not a selector event loop
    reads = ControlReads.of(loop)
    deferred = 0
    for _dtls, connection in _ice_connections(pc):
        for protocol in getattr(connection, _ICE_PROTOCOLS):
            transport = getattr(protocol, "transport", None)
            if reads.defer(transport):
                deferred += 1
    return deferred


class ControlReads:
    """Reads the sockets of connections that carry only control traffic when the
    event loop is awake anyway, instead of letting each datagram wake it.

    A subscribe connection receives the subscriber's receiver reports, NACKs, PLIs and
    ICE consent checks: one or two datagrams a second, at random times. On an otherwise
    idle loop each one is a wake-up, which on a VM costs more CPU than handling the
    datagram. While media arrives (`on_media`, from the synchronous receive path), those
    sockets sit in a private epoll, polled without waiting at most every 10 ms, so a
    NACK is answered at the next media packet; after 0.1 s without media the private
    epoll's own descriptor joins the loop's selector, and control datagrams wake the loop
    as they arrive, as before. One per event loop.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ControlReads] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)  # the loop keys `_by_loop` weakly
        self._epoll: select.epoll | None = None
        self._transports: dict[int, asyncio.BaseTransport] = {}
        self._next_poll = 0.0
        self._watching = False
        self._watchdog: asyncio.TimerHandle | None = None
        self.polls = 0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> ControlReads:
        reads = cls._by_loop.get(loop)
        if reads is None:
            reads = cls._by_loop[loop] = cls(loop)
        return reads

    @property
    def deferred(self) -> int:
        """Sockets read through the private epoll."""
        return len(self._transports)

    @property
    def descriptors(self) -> tuple[int, ...]:
        """The duplicated descriptors the private epoll watches (one per socket)."""
        return tuple(self._transports)

    @property
    def waking(self) -> bool:
        """True while control datagrams wake the loop (no media lately)."""
        return self._watching

    def defer(self, transport: object) -> bool:
        """Take `transport`'s socket off the loop's selector; False if it is not a plain
        UDP socket transport of this loop, or already deferred or closing."""
        loop = asyncio.get_running_loop()
        if (
            self._loop_ref() is not loop
            or not isinstance(transport, asyncio.BaseTransport)
            or not hasattr(transport, "sendto")
            or transport.is_closing()
            or getattr(transport, _TRANSPORT_LOOP, None) is not loop
            or not hasattr(transport, _TRANSPORT_READ_READY)
            or not isinstance(getattr(transport, _TRANSPORT_SOCK_FD, None), int)
            or any(t is transport for t in self._transports.values())
        ):
            return False
        if self._epoll is None:
            self._epoll = select.epoll()
        # Our own duplicate is what the epoll watches: we can always unregister it,
        # whoever closes the transport's descriptor first.
        watched = os.dup(getattr(transport, _TRANSPORT_SOCK_FD))
        getattr(loop, _LOOP_REMOVE_READER)(getattr(transport, _TRANSPORT_SOCK_FD))
        self._epoll.register(watched, select.EPOLLIN)
        self._transports[watched] = transport
        close = transport.close

        def close_and_forget() -> None:
            self._forget(watched)
            close()

        transport.close = close_and_forget  # type: ignore[method-assign]
        if self._watchdog is None:
            self._watchdog = loop.call_later(_WATCHDOG_PERIOD, self._check)
        if not self._watching and self._idle():
            self._watch(loop)
        return True

    def _idle(self) -> bool:
        # `_next_poll` is the last media-driven poll plus the poll interval
        return time.monotonic() >= self._next_poll - _POLL_INTERVAL + _IDLE_AFTER

    def on_media(self) -> None:
        """A media packet arrived: poll the deferred sockets if 10 ms have passed."""
        if not self._transports:
            return
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + _POLL_INTERVAL
        if self._watching:
            self._unwatch()
        self.poll()

    def poll(self) -> None:
        """Read what the deferred sockets hold (one datagram per socket and round)."""
        epoll = self._epoll
        if epoll is None:
            return
        self.polls += 1
        for _ in range(_POLL_ROUNDS):
            ready = epoll.poll(0)
            if not ready:
                return
            for watched, _events in ready:
                transport = self._transports.get(watched)
                if transport is None:
                    continue
                if transport.is_closing():
                    self._forget(watched)
                    continue
                try:
                    getattr(transport, _TRANSPORT_READ_READY)()
                except Exception:
                    logger.exception("handling a control datagram failed")

    def _check(self) -> None:
        self._watchdog = None
        for watched, transport in list(self._transports.items()):
            if transport.is_closing():
                self._forget(watched)
        loop = self._loop_ref()
        if loop is None or not self._transports:
            return
        if (
            not self._watching
            and time.monotonic() >= self._next_poll + _IDLE_AFTER - _POLL_INTERVAL
        ):
            self._watch(loop)
            self.poll()
        self._watchdog = loop.call_later(_WATCHDOG_PERIOD, self._check)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._epoll is not None
        loop.add_reader(self._epoll.fileno(), self.poll)
        self._watching = True

    def _unwatch(self) -> None:
        loop = self._loop_ref()
        if loop is not None and self._epoll is not None:
            loop.remove_reader(self._epoll.fileno())
        self._watching = False

    def _forget(self, watched: int) -> None:
        if self._transports.pop(watched, None) is None:
            return
        assert self._epoll is not None
        self._epoll.unregister(watched)
        os.close(watched)
        if not self._transports:
            if self._watching:
                self._unwatch()
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None


# --------------------------------------------------------------------------- ICE gathering

_configured: weakref.WeakSet[Connection] = weakref.WeakSet()


def configure_gathering(
    pc: RTCPeerConnection, addresses: Sequence[str], port_range: tuple[int, int] | None
) -> None:
    """Make every ICE connection of `pc` gather host candidates on `addresses`.

    Call it before each `setLocalDescription` (transports are created lazily, by
    `addTransceiver` or by a remote offer); connections already configured are skipped.
    With no addresses and no port range, aioice's own gathering is kept.
    """
    if not addresses and port_range is None:
        return
    gatherers: list[RTCIceGatherer] = []
    for transceiver in pc.getTransceivers():
        gatherers.append(transceiver.receiver.transport.transport.iceGatherer)
    if pc.sctp is not None:
        gatherers.append(pc.sctp.transport.transport.iceGatherer)
    for gatherer in gatherers:
        connection: Connection = getattr(gatherer, _GATHERER_CONNECTION)
        if connection in _configured:
            continue
        _configured.add(connection)
        policy = _GatherPolicy(connection, tuple(addresses), port_range)
        connection.gather_candidates = policy.gather  # type: ignore[method-assign]


class _GatherPolicy:
    """aioice's `gather_candidates`, with our addresses and port range for host candidates."""

    def __init__(
        self, connection: Connection, addresses: tuple[str, ...], port_range: tuple[int, int] | None
    ) -> None:
        self._connection = weakref.ref(connection)
        self._addresses = addresses
        self._port_range = port_range

    async def gather(self) -> None:
        conn = self._connection()
        if conn is None or conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        addresses: list[str] = []
        if conn._transport_policy == TransportPolicy.ALL:
            addresses = list(self._addresses) or aioice_ice.get_host_addresses(
                use_ipv4=conn._use_ipv4, use_ipv6=conn._use_ipv6
            )
        for component in sorted(conn._components):
            if self._port_range is None:
                candidates = await conn.get_component_candidates(
                    component=component, addresses=addresses
                )
            else:
                candidates = await self._gather_in_range(conn, component, addresses)
            conn._local_candidates += candidates
        conn._local_candidates_end = True

    async def _gather_in_range(
        self, conn: Connection, component: int, addresses: list[str]
    ) -> list[Candidate]:
        assert self._port_range is not None
        candidates: list[Candidate] = []
        protocols = []
        for address in addresses:
            protocol = await _bind_in_range(conn, address, component, self._port_range)
            if protocol is not None:
                protocols.append(protocol)
                candidates.append(protocol.local_candidate)
        conn._protocols += protocols
        if conn.stun_server is not None:
            tasks = [
                asyncio.create_task(aioice_ice.server_reflexive_candidate(p, conn.stun_server))
                for p in protocols
                if ":" not in p.local_candidate.host
            ]
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=5)
                for task in pending:
                    task.cancel()
                for task in done:
                    if task.exception() is None:
                        candidates.append(task.result()[0])
        if conn.turn_server is not None:
            # With no host addresses aioice only allocates the relayed candidate.
            candidates += await conn.get_component_candidates(component=component, addresses=[])
        return candidates


async def _bind_in_range(
    conn: Connection, address: str, component: int, port_range: tuple[int, int]
) -> Any:
    loop = asyncio.get_running_loop()
    low, high = port_range
    count = high - low + 1
    start = random.randrange(count)
    for i in range(count):
        port = low + (start + i) % count
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: aioice_ice.StunProtocol(conn), local_addr=(address, port)
            )
        except OSError:
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice_turn.UDP_SOCKET_BUFFER_SIZE)
        host, bound_port = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=bound_port,
            type="host",
        )
        return protocol
    logger.warning("no free UDP port in %d-%d on %s", low, high, address)
    return None


# --------------------------------------------------------------------------- direct send path

_RTP_HEADER = struct.Struct("!BBHII")
_GSO_SIZE = struct.Struct("H")
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
_UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
_GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 60000
# what sendmsg with UDP_SEGMENT fails with where the kernel or device cannot segment
_GSO_UNSUPPORTED = (errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP)
_GSO_ANCILLARY: dict[int, list[tuple[int, int, bytes]]] = {}
_SEQ_MASK = 0xFFFF
_TS_MASK = 0xFFFFFFFF
_HISTORY_MASK = RTP_HISTORY_SIZE - 1
_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
# Frames between checks that the transport is still up (a closed one is also caught by
# the sender's stop() and by send errors), and between updates of the (wall clock, RTP
# timestamp) pair sender reports extrapolate from.
_ROUTE_CHECK_MASK = 31
_SR_UPDATE_MASK = 15
# pts step inserted when a reused m-section switches to another producer
_PTS_STEP = {"video": 3000, "audio": 960}
_RTT_ALPHA = 0.85  # aiortc's smoothing of round trip times


def _mid_extension(extension_id: int, mid: str) -> bytes:
    """The RFC 8285 one-byte header extension block carrying the MID."""
    value = mid.encode()
    if not 1 <= extension_id <= 14 or not 1 <= len(value) <= 16:
        return b""
    element = bytes([(extension_id << 4) | (len(value) - 1)]) + value
    element += b"\x00" * (-len(element) % 4)
    return struct.pack("!HH", 0xBEDE, len(element) // 4) + element


class _Route:
    """Where a `DirectRtpSender`'s packets go once the transport is up.

    For a host or server-reflexive pair, packets are sent synchronously on a duplicate of
    the ICE socket's descriptor (same kernel socket; asyncio's transport would add a
    Python layer and buffering per packet), a whole frame in one ``sendmsg`` with UDP
    GSO where the kernel supports it. A relayed pair goes through aioice's TURN client.
    """

    gso_supported = sys.platform == "linux"

    def __init__(self, dtls: RTCDtlsTransport, pair: Any, native: bool = True) -> None:
        self.dtls = dtls
        self.address = pair.remote_addr
        self.transport = pair.protocol.transport
        self.session: pylibsrtp.Session = getattr(dtls, _DTLS_TX_SRTP)
        self.protect = lean_protect(self.session)
        self.sock: socket.socket | None = None
        self.relay: Callable[[bytes, Any], None] | None = None
        # (descriptor, packed address, srtp_protect, srtp_t) for `native_send.send_frame`
        self.native: tuple[int, bytes, int, int] | None = None
        raw = None if is_relayed(self.transport) else self.transport.get_extra_info("socket")
        if raw is not None:
            self.sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
            self.sock.setblocking(False)
            if native and native_send.AVAILABLE:
                with contextlib.suppress(ValueError):  # not a numeric address: Python path
                    address = native_send.sockaddr(self.address[0], self.address[1])
                    self.native = (self.sock.fileno(), address, *srtp_pointers(self.session))
        else:
            self.relay = self.transport.sendto

    @property
    def usable(self) -> bool:
        return getattr(self.dtls, _DTLS_STATE) is DtlsState.CONNECTED and not _closing(
            self.transport
        )

    def send(self, packets: list[bytes], uniform: bool = False) -> None:
        """Send `packets`; `uniform`: all but the last have the same size (UDP GSO can
        carry them in one call)."""
        sock = self.sock
        if sock is None:
            assert self.relay is not None
            for packet in packets:
                self.relay(packet, self.address)
            return
        address = self.address
        if uniform and _Route.gso_supported:
            try:
                self._send_segmented(sock, packets)
                return
            except BlockingIOError:
                return  # socket buffer full: drop the frame, NACK recovers
            except OSError as exc:
                if exc.errno not in _GSO_UNSUPPORTED:
                    raise
                logger.info("UDP GSO unavailable (%s): one sendto per packet", exc)
                _Route.gso_supported = False
        try:
            for packet in packets:
                sock.sendto(packet, address)
        except BlockingIOError:
            pass

    def send_natively(
        self,
        first_byte: int,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        extension: bytes,
        payloads: RtpPayloads,
    ) -> None:
        """`send` for a frame built, protected and sent by `native_send.send_frame`
        (the route has `native`): the same datagrams, one call."""
        assert self.native is not None
        fd, address, protect, session = self.native
        items = payloads.items
        gso = payloads.uniform and _Route.gso_supported
        try:
            native_send.send_frame(
                fd, address, protect, session, first_byte, payload_type,
                sequence_number, timestamp, ssrc, extension, items, True, gso,
            )  # fmt: skip
        except BlockingIOError:
            return  # socket buffer full: drop the frame, NACK recovers
        except OSError as exc:
            if not gso or exc.errno not in _GSO_UNSUPPORTED:
                raise
            logger.info("UDP GSO unavailable (%s): one sendto per packet", exc)
            _Route.gso_supported = False
            # Nothing was sent (the segmented call comes first); the SRTP policy allows
            # protecting the same sequence numbers again.
            with contextlib.suppress(BlockingIOError):
                native_send.send_frame(
                    fd, address, protect, session, first_byte, payload_type,
                    sequence_number, timestamp, ssrc, extension, items, True, False,
                )  # fmt: skip

    def _send_segmented(self, sock: socket.socket, packets: list[bytes]) -> None:
        """Equal-size datagrams (the last may be shorter) in as few syscalls as possible:
        one for a frame of up to 64 packets and 60 kB."""
        size = len(packets[0])
        ancillary = _GSO_ANCILLARY.get(size)
        if ancillary is None:
            ancillary = _GSO_ANCILLARY[size] = [(_SOL_UDP, _UDP_SEGMENT, _GSO_SIZE.pack(size))]
        per_call = max(1, min(_GSO_MAX_SEGMENTS, _GSO_MAX_BYTES // size))
        if len(packets) <= per_call:
            sock.sendmsg([b"".join(packets)], ancillary, 0, self.address)
            return
        for start in range(0, len(packets), per_call):
            chunk = packets[start : start + per_call]
            if len(chunk) == 1:
                sock.sendto(chunk[0], self.address)
            else:
                sock.sendmsg([b"".join(chunk)], ancillary, 0, self.address)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class DirectRtpSender:
    """Sends forwarded frames for one `RTCRtpSender` straight to its socket.

    The stock path costs one task wake-up per frame and about 15 us of Python per
    packet (RtpPacket objects, header-extension maps, four coroutine layers down to the
    socket). Here a frame's payloads, packetized once per producer, are sent by each
    consumer in one synchronous call: RTP headers, SRTP protect, one ``sendmsg``.

    aiortc's sender keeps the rest: its RTP task idles on a track that never yields, a
    NACK reaches `retransmit` (installed as the sender's ``_retransmit``, answering from
    our own history with RTX), PLI/FIR go to `on_keyframe_request`. The connection's
    `SenderReports` sends this stream's sender reports together with its other streams'
    (on one clock for the whole process) instead of a task per sender, whose RTCP task
    only sends the BYE when it stops, and reads the subscriber's receiver reports about
    it (`link_quality`); RTCP that mixes in anything else still goes to aiortc. Payload
    types, RTX and the MID extension come from the parameters aiortc passes to
    ``send()`` once the transport is up (`ready` turns true, `on_ready` is called);
    ``stop()`` closes the duplicated socket.
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        kind: str,
        on_ready: Callable[[], None],
        *,
        native: bool = True,
    ) -> None:
        for name in (*_TX_FIELDS, _TX_RETRANSMIT, "send", "stop"):
            _require(sender, name)
        self._sender = sender
        self._native = native
        self._on_ready = on_ready
        self._step = _PTS_STEP[kind]
        self._ssrc: int = getattr(sender, _TX_SSRC)
        self._rtx_ssrc: int = getattr(sender, _TX_RTX_SSRC)
        self._seq = random.getrandbits(15)
        self._rtx_seq = random.getrandbits(15)
        self._ts_origin = random.getrandbits(32)
        self._offset = 0
        self._last_pts: int | None = None
        self._rebase = False
        self._pt: int | None = None
        self._rtx_pt: int | None = None
        self._first_byte = 0x80
        self._extension = b""
        # per sequence number: (the frame's first sequence number, RTP timestamp, payloads)
        self._history: list[tuple[int, int, Sequence[bytes]] | None] = [None] * RTP_HISTORY_SIZE
        self._route: _Route | None = None
        self._closed = False
        self._octets = 0
        self._frames = 0
        self._clock_rate = 0
        self._cname = ""
        self._sr_wall: float | None = None
        self._sr_rtp = 0
        self._last_sr = 0
        self._last_sr_time = 0.0
        self._reports: SenderReports | None = None
        self._link = NO_LINK
        self.packets_sent = 0
        self.nacks_received = 0
        self.retransmissions = 0
        original_send = sender.send
        original_stop = sender.stop

        async def send(parameters: RTCRtpSendParameters) -> None:
            await original_send(parameters)
            self._bind(parameters)

        async def stop() -> None:
            self.close()
            await original_stop()

        setattr(sender, "send", send)  # noqa: B010
        setattr(sender, "stop", stop)  # noqa: B010
        setattr(sender, _TX_RETRANSMIT, self.retransmit)
        setattr(sender, _TX_RUN_RTCP, self._rtcp_until_stopped)

    @property
    def native(self) -> bool:
        """Frames currently go out through the C extension (`native_send`)."""
        return self._route is not None and self._route.native is not None

    @property
    def ready(self) -> bool:
        """The transport is up and the negotiated parameters are known."""
        return self._pt is not None and not self._closed

    def counts(self) -> SendCounts:
        """Packets and payload bytes sent, NACKed sequence numbers, retransmissions."""
        return SendCounts(
            self.packets_sent, self._octets, self.nacks_received, self.retransmissions
        )

    def close(self) -> None:
        """Stop sending and release the duplicated socket. Idempotent."""
        self._closed = True
        if self._reports is not None:
            self._reports.discard(self)
            self._reports = None
        if self._route is not None:
            self._route.close()
            self._route = None

    def _bind(self, parameters: RTCRtpSendParameters) -> None:
        if self._pt is not None or self._closed or not parameters.codecs:
            return
        pt = parameters.codecs[0].payloadType
        for codec in parameters.codecs:
            if codec.name.lower() == "rtx" and codec.parameters.get("apt") == pt:
                self._rtx_pt = codec.payloadType
        for extension in parameters.headerExtensions:
            if extension.uri == _MID_URI and parameters.muxId:
                self._extension = _mid_extension(extension.id, parameters.muxId)
        self._first_byte = 0x90 if self._extension else 0x80
        self._clock_rate = parameters.codecs[0].clockRate
        self._cname = parameters.rtcp.cname or ""
        self._pt = pt
        self._reports = SenderReports.of(self._sender.transport)
        self._reports.add(self)
        self._on_ready()

    def detach(self) -> None:
        """The next frame starts a new source: keep RTP timestamps continuous."""
        self._rebase = self._last_pts is not None

    def _resolve(self) -> _Route | None:
        if self._route is not None:
            self._route.close()
            self._route = None
        if self._closed:
            return None
        dtls = self._sender.transport
        if getattr(dtls, _DTLS_STATE) is not DtlsState.CONNECTED:
            return None
        pair = getattr(dtls.transport._connection, _ICE_NOMINATED).get(1)
        if pair is None or _closing(pair.protocol.transport):
            return None
        self._route = _Route(dtls, pair, native=self._native)
        return self._route

    def send_frame(self, payloads: RtpPayloads, pts: int) -> bool:
        """Send one frame's RTP packets; False when the transport is not up.

        Runs once per frame per subscriber, so per-frame bookkeeping is kept light: the
        route is re-checked every 32 frames, the (wall clock, RTP timestamp) pair sender
        reports extrapolate from is taken on the first frame and every 16th after it,
        and the NACK history keeps one entry per frame, shared by its packets' slots.
        (Copying header and payload into the SRTP buffer separately measured slower
        than concatenating: two cffi calls cost more than one 1 kB copy.)
        """
        route = self._route
        frames = self._frames = self._frames + 1
        if route is None or (frames & _ROUTE_CHECK_MASK == 0 and not route.usable):
            route = self._resolve()
        pt = self._pt
        if route is None or pt is None:
            return False
        if self._rebase:
            assert self._last_pts is not None
            self._offset = self._last_pts + self._step - pts
            self._rebase = False
        pts += self._offset
        self._last_pts = pts
        timestamp = (self._ts_origin + pts) & _TS_MASK
        first_byte = self._first_byte
        ssrc = self._ssrc
        extension = self._extension
        history = self._history
        protect = route.protect
        pack = _RTP_HEADER.pack
        items = payloads.items
        seq = self._seq
        entry = (seq, timestamp, items)
        count = len(items)
        last = count - 1
        try:
            if route.native is not None:
                route.send_natively(first_byte, pt, seq, timestamp, ssrc, extension, payloads)
                for _ in items:
                    history[seq & _HISTORY_MASK] = entry
                    seq = (seq + 1) & _SEQ_MASK
            else:
                packets: list[bytes] = []
                append = packets.append
                for i in range(count):
                    history[seq & _HISTORY_MASK] = entry
                    marker = 0x80 if i == last else 0
                    header = pack(first_byte, marker | pt, seq, timestamp, ssrc)
                    append(protect(header + extension + items[i]))
                    seq = (seq + 1) & _SEQ_MASK
                route.send(packets, payloads.uniform)
        except (pylibsrtp.Error, OSError, RuntimeError, ValueError) as exc:
            logger.debug("direct send failed: %s", exc)
            route.close()
            self._route = None
        self._seq = seq
        self.packets_sent += count
        self._octets += payloads.size
        if frames & _SR_UPDATE_MASK == 1:
            self._sr_wall = time.time()
            self._sr_rtp = timestamp
        return True

    def sender_report(self, now: float) -> SenderReport | None:
        """This stream's sender report at Unix time `now` (None before its first frame).

        Also what aiortc's RTCP task would have recorded: the counts (its ``getStats()``)
        and the report's NTP middle bits and time, so that it still computes the round
        trip time from the subscriber's receiver reports.
        """
        if self._sr_wall is None or self._closed:
            return None
        ntp = ntp_timestamp(now)
        rtp_timestamp = self._sr_rtp + int((now - self._sr_wall) * self._clock_rate)
        self._last_sr = last_sr(ntp)
        self._last_sr_time = now
        sender = self._sender
        setattr(sender, _TX_LSR, self._last_sr)
        setattr(sender, _TX_LSR_TIME, now)
        setattr(sender, _TX_SR_PACKETS, self.packets_sent)
        setattr(sender, _TX_SR_OCTETS, self._octets)
        return SenderReport(
            self._ssrc, self._cname, ntp, rtp_timestamp, self.packets_sent, self._octets
        )

    @property
    def ssrc(self) -> int:
        return self._ssrc

    def on_receiver_report(self, block: ReportBlock, now: float) -> None:
        """Take in the subscriber's report about this stream (what aiortc's sender does
        with it: the round trip time from the SR it answers, smoothed the same way)."""
        rtt = self._link.round_trip_time
        if block.lsr and block.lsr == self._last_sr:
            sample = now - self._last_sr_time - block.dlsr / 65536
            rtt = sample if rtt is None else _RTT_ALPHA * rtt + (1 - _RTT_ALPHA) * sample
        jitter = block.jitter / self._clock_rate if self._clock_rate else None
        self._link = LinkQuality(rtt, block.fraction_lost, block.packets_lost, jitter)

    def link_quality(self) -> LinkQuality:
        """The latest receiver report's view of this stream."""
        return self._link

    def live_route(self) -> _Route | None:
        """The route frames currently go out on, if the transport is still up."""
        route = self._route
        return route if route is not None and route.usable else None

    async def _rtcp_until_stopped(self) -> None:
        # Stands in for aiortc's RTCP task: idle until stop() cancels it, then the BYE.
        sender = self._sender
        getattr(sender, _TX_RTCP_STARTED).set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        try:
            await getattr(sender, _TX_SEND_RTCP)([RtcpByePacket(sources=[self._ssrc])])
        finally:
            getattr(sender, _TX_RTCP_EXITED).set()

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from our history, as RTX when negotiated."""
        self.nacks_received += 1
        entry = self._history[sequence_number & _HISTORY_MASK]
        route = self._route
        if entry is None or route is None or self._pt is None:
            return
        first, timestamp, items = entry
        index = (sequence_number - first) & _SEQ_MASK
        if index >= len(items):  # the slot belongs to a later frame now
            return
        seq = sequence_number
        payload = items[index]
        marker = 0x80 if index == len(items) - 1 else 0
        if self._rtx_pt is not None:
            header = _RTP_HEADER.pack(
                self._first_byte, marker | self._rtx_pt, self._rtx_seq, timestamp, self._rtx_ssrc
            )
            payload = struct.pack("!H", seq) + payload
            self._rtx_seq = (self._rtx_seq + 1) & _SEQ_MASK
        else:
            header = _RTP_HEADER.pack(
                self._first_byte, marker | self._pt, seq, timestamp, self._ssrc
            )
        try:
            route.send([route.protect(header + self._extension + payload)])
            self.retransmissions += 1
        except (pylibsrtp.Error, OSError, RuntimeError, ValueError) as exc:
            logger.debug("retransmission failed: %s", exc)


_REPORT_TICK = 0.5
"""Seconds between the sender-report clock's ticks (one timer for the whole process)."""
_REPORT_DELAY = (0.25, 1.25)
"""A connection's next reports are due this long after its last (uniformly drawn); ticks
round it up to 0.5, 1.0 or 1.5 s: about once a second on average, like aiortc's."""


class SenderReports:
    """Sender reports for all the direct senders of one DTLS transport, sent together,
    and the subscriber's receiver reports about them, read without aiortc.

    aiortc runs a task per sender that wakes up about once a second to send one SR and
    SDES: a subscriber with 60 m-sections costs 60 wake-ups and 60 datagrams a second.
    Here a connection's reports go out together, in compound packets of up to 16
    (`sfu.rtcp.compound_packets`), when the process-wide `_ReportClock` finds them due:
    on a mostly idle server every wake-up costs ~100 us of CPU (`scripts/bench/
    relay_floor.py`), so 50 subscribers' timers cost more than their reports.
    """

    _by_transport: weakref.WeakKeyDictionary[RTCDtlsTransport, SenderReports] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = weakref.ref(dtls)
        self._senders: dict[int, DirectRtpSender] = {}
        self._by_ssrc: dict[int, DirectRtpSender] = {}
        self._clock: _ReportClock | None = None
        self.compounds_sent = 0
        self.receiver_reports = 0

    @classmethod
    def of(cls, dtls: RTCDtlsTransport) -> SenderReports:
        """The reports of `dtls`'s senders (made on first use)."""
        reports = cls._by_transport.get(dtls)
        if reports is None:
            reports = cls._by_transport[dtls] = cls(dtls)
        return reports

    @classmethod
    def known(cls, dtls: RTCDtlsTransport) -> SenderReports | None:
        """The reports of `dtls`'s senders, if it has had any."""
        return cls._by_transport.get(dtls)

    @property
    def senders(self) -> int:
        return len(self._senders)

    def add(self, sender: DirectRtpSender) -> None:
        self._senders[id(sender)] = sender
        self._by_ssrc[sender.ssrc] = sender
        if self._clock is None:
            self._clock = _ReportClock.of(asyncio.get_running_loop())
            self._clock.add(self)

    def discard(self, sender: DirectRtpSender) -> None:
        self._senders.pop(id(sender), None)
        if self._by_ssrc.get(sender.ssrc) is sender:
            del self._by_ssrc[sender.ssrc]
        if not self._senders and self._clock is not None:
            self._clock.discard(self)
            self._clock = None

    def send_now(self) -> int:
        """Send every sending stream's report; returns the number of packets sent."""
        dtls = self._dtls()
        srtp = None if dtls is None else getattr(dtls, _DTLS_TX_SRTP)
        route = next(
            (r for r in map(DirectRtpSender.live_route, self._senders.values()) if r), None
        )
        if srtp is None or route is None:
            return 0
        now = time.time()
        reports = [
            report
            for report in (s.sender_report(now) for s in self._senders.values())
            if report is not None
        ]
        compounds = compound_packets(reports)
        for compound in compounds:
            route.send([srtp.protect_rtcp(compound)])
        self.compounds_sent += len(compounds)
        return len(compounds)

    def take_receiver_reports(self, data: bytes) -> bool:
        """Handle a received (unprotected) RTCP compound if it is only receiver reports
        (and SDES) about our direct senders: what subscribers send about once a second
        per stream. aiortc's path for those (parse into objects, route, a stats object
        per report) costs several times more. Anything else returns False, for aiortc."""
        blocks = receiver_report_blocks(data)
        if blocks is None:
            return False
        senders = [self._by_ssrc.get(block.ssrc) for block in blocks]
        if None in senders:
            return False
        now = time.time()
        for sender, block in zip(senders, blocks, strict=True):
            assert sender is not None
            sender.on_receiver_report(block, now)
        self.receiver_reports += 1
        return True


class _ReportClock:
    """One timer per event loop, ticking every 0.5 s while any connection has senders,
    that sends the reports of the connections that are due."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ReportClock] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        # No reference to the loop: it keys `_by_loop` weakly.
        self._due: dict[SenderReports, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.ticks = 0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _ReportClock:
        clock = cls._by_loop.get(loop)
        if clock is None:
            clock = cls._by_loop[loop] = cls()
        return clock

    def add(self, reports: SenderReports) -> None:
        loop = asyncio.get_running_loop()
        self._due[reports] = loop.time() + random.uniform(*_REPORT_DELAY)
        if self._timer is None:
            self._timer = loop.call_later(_REPORT_TICK, self._tick)

    def discard(self, reports: SenderReports) -> None:
        self._due.pop(reports, None)
        if not self._due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.ticks += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [reports for reports, at in self._due.items() if at <= now]
        for reports in due:
            self._due[reports] = now + random.uniform(*_REPORT_DELAY)
            try:
                reports.send_now()
            except (pylibsrtp.Error, OSError) as exc:
                logger.debug("sending sender reports failed: %s", exc)
        self._timer = loop.call_later(_REPORT_TICK, self._tick) if self._due else None


def lean_protect(session: pylibsrtp.Session) -> Callable[[bytes], bytes]:
    """`session.protect`, minus its per-call allocation (about a third of its cost).

    Uses the session's own buffer, like pylibsrtp does; calls never interleave (one
    thread, each call synchronous).
    """
    for name in _SRTP_SESSION_FIELDS:
        _require(session, name)
    cdata = session._cdata
    srtp = session._srtp[0]
    length = srtp_binding.ffi.new("int *")
    buffer = srtp_binding.ffi.buffer(cdata)
    memmove = srtp_binding.ffi.memmove
    srtp_protect = srtp_binding.lib.srtp_protect
    limit = len(buffer) - pylibsrtp.SRTP_MAX_TRAILER_LEN
    errors = pylibsrtp.ERRORS

    def protect(packet: bytes, _keep: object = session) -> bytes:
        size = len(packet)
        if size > limit:
            raise ValueError("packet is too long")
        memmove(cdata, packet, size)
        length[0] = size
        status = srtp_protect(srtp, cdata, length)
        if status:
            raise pylibsrtp.Error(errors[status])
        result: bytes = buffer[0 : length[0]]
        return result

    return protect


def srtp_pointers(session: pylibsrtp.Session) -> tuple[int, int]:
    """The addresses of libsrtp's ``srtp_protect`` and of `session`'s ``srtp_t``, for
    `native_send.send_frame`; valid while `session` lives (keep a reference)."""
    _require(session, "_srtp")
    ffi, lib = srtp_binding.ffi, srtp_binding.lib
    return (
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
        int(ffi.cast("uintptr_t", session._srtp[0])),
    )


def is_relayed(transport: object) -> bool:
    """True for the transport of a relayed candidate (aioice's `TurnTransport`): it has no
    socket of its own, packets go through the TURN client (``sendto`` wraps them in
    ChannelData or Send indications)."""
    return isinstance(transport, aioice_turn.TurnTransport)


def _closing(transport: Any) -> bool:
    # aioice's TurnTransport has no is_closing(); its sendto() drops data once closed.
    is_closing = getattr(transport, "is_closing", None)
    return bool(is_closing()) if is_closing is not None else False


# --------------------------------------------------------------------------- test support


@dataclass(frozen=True)
class SelectedPair:
    """The candidate pair ICE nominated on a peer connection."""

    local_type: str
    """``host``, ``srflx`` or ``relay``."""
    local_address: tuple[str, int]
    remote_type: str
    remote_address: tuple[str, int]
    relay_transport: str | None
    """For a relayed local candidate, how it reaches the TURN server: ``udp``, ``tcp`` or
    ``tls`` (the socket under aioice's TURN client)."""


def selected_pair(pc: RTCPeerConnection) -> SelectedPair | None:
    """The nominated candidate pair of `pc`'s (bundled) transport, once ICE completed."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        return None
    connection = getattr(transceivers[0].receiver.transport.transport, _GATHERER_CONNECTION)
    pair = getattr(connection, _ICE_NOMINATED).get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    relay: str | None = None
    if local.type == "relay" and is_relayed(pair.protocol.transport):
        relay = "tls" if connection.turn_ssl else str(connection.turn_transport)
    return SelectedPair(
        local_type=local.type,
        local_address=(local.host, local.port),
        remote_type=remote.type,
        remote_address=(remote.host, remote.port),
        relay_transport=relay,
    )


def ice_servers_in_use(pc: RTCPeerConnection) -> list[tuple[Any, Any]]:
    """(STUN server, TURN server) of each ICE connection of `pc`, as aioice sees them."""
    servers = []
    for transceiver in pc.getTransceivers():
        connection = getattr(
            transceiver.receiver.transport.transport.iceGatherer, _GATHERER_CONNECTION
        )
        servers.append((connection.stun_server, connection.turn_server))
    return servers


def relay_settings_in_use(pc: RTCPeerConnection) -> list[tuple[str, str, bool]]:
    """(transport policy ``"ALL"``/``"RELAY"``, TURN transport, TURN over TLS) of each ICE
    connection of `pc`, as aioice sees them."""
    settings = []
    for transceiver in pc.getTransceivers():
        connection = getattr(
            transceiver.receiver.transport.transport.iceGatherer, _GATHERER_CONNECTION
        )
        settings.append(
            (connection._transport_policy.name, connection.turn_transport, connection.turn_ssl)
        )
    return settings


def is_rtp(datagram: bytes) -> bool:
    """True for an (S)RTP media packet, as opposed to RTCP, DTLS or STUN."""
    return len(datagram) >= 2 and 128 <= datagram[0] < 192 and not 192 <= datagram[1] <= 223


def filter_datagrams(
    pc: RTCPeerConnection,
    *,
    drop_outgoing: Callable[[bytes], bool] | None = None,
    drop_incoming: Callable[[bytes], bool] | None = None,
) -> int:
    """Drop datagrams on `pc`'s ICE transports for which a predicate is true.

    Loss injection for tests; call it once the transports exist (after the first
    offer/answer is applied). Returns the number of transports filtered.
    """
    transports = {
        id(t.receiver.transport.transport): t.receiver.transport.transport
        for t in pc.getTransceivers()
    }
    for ice in transports.values():
        _require(ice, "_send")
        _require(ice, "_recv")
        if drop_outgoing is not None:
            setattr(ice, "_send", _filtered_send(ice._send, drop_outgoing))  # noqa: B010
        if drop_incoming is not None:
            setattr(ice, "_recv", _filtered_recv(ice._recv, drop_incoming))  # noqa: B010
    return len(transports)


def _filtered_send(
    send: Callable[[bytes], Any], drop: Callable[[bytes], bool]
) -> Callable[[bytes], Any]:
    async def filtered(data: bytes) -> None:
        if not drop(data):
            await send(data)

    return filtered


def _filtered_recv(recv: Callable[[], Any], drop: Callable[[bytes], bool]) -> Callable[[], Any]:
    async def filtered() -> bytes:
        while True:
            data: bytes = await recv()
            if not drop(data):
                return data

    return filtered


def wrap_receive(
    pc: RTCPeerConnection, wrap: Callable[[Callable[[], Any]], Callable[[], Any]]
) -> int:
    """Make DTLS on `pc` read through ``wrap(receive)``, where `receive` is the ICE
    transport's own coroutine function returning the next datagram.

    For tests that hold or fail a handshake; call it once the transports exist. Returns
    the number of transports wrapped.
    """
    transports = {
        id(t.receiver.transport.transport): t.receiver.transport.transport
        for t in pc.getTransceivers()
    }
    for ice in transports.values():
        _require(ice, "_recv")
        setattr(ice, "_recv", wrap(ice._recv))  # noqa: B010
    return len(transports)

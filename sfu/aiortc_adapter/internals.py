"""Every aiortc / aioice / asyncio / pylibsrtp private name the adapter uses, and the check
that they exist, run when `sfu.aiortc_adapter` is imported.

The versions below are pinned in pyproject.toml; `tests/sfu/test_adapter_canary.py` fails
loudly when the internals we rely on move. Checks happen at import: assigning a renamed
name-mangled attribute would silently create a new one, and aiortc would go back to
decoding every frame without anyone noticing. A name used anywhere in the adapter is
listed here (`tests/sfu/test_adapter_boundary.py` checks that no other module uses one).

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
- `RTCRtpReceiver._send_rtcp`: wrapped on a publisher's video receivers (`RembSum`) so
  that the REMB each sends upstream carries the sum over the connection's video
  receivers (aiortc estimates per receiver; a browser reads any REMB as its whole
  connection's estimate, so a camera's low layer would cap both layers).
- `RTCRtpSender._send_keyframe`: called by aiortc on a subscriber's PLI/FIR; overridden
  per sender to reach our keyframe policy.
- `RTCRtpSender._stream_id` / `_track_id`: the msid written into the subscribe offer.
- `RtpPacket._data`: the depayloaded payload set by the receiver.
- The direct send path (`sfu.direct_send`, through `senders` and `transports`): the
  sender's `_ssrc`, `_rtx_ssrc`, `_retransmit`; its `_run_rtcp` (replaced per sender:
  sender reports are sent per connection by `sfu.sender_reports`), the `__rtcp_started` /
  `__rtcp_exited` events `stop()` waits for, `_send_rtcp` (the BYE), `__rtcp_task` (tests
  check which coroutine it runs), and what its RTCP task would have recorded
  (`__packet_count`, `__octet_count`, `__lsr`, `__lsr_time`: stats and round trip time);
  the DTLS transport's `_state` and `_tx_srtp`; the ICE transport's `_connection` and
  aioice's `_nominated`; pylibsrtp's session buffer (`_cdata`, `_srtp`) and its
  `_binding`, to protect without allocating.
- The stock send path (`SenderCounters`): the sender's `__packet_count` / `__octet_count`
  (forwarded packets and payload bytes), its `_retransmit` (wrapped to count NACKed
  sequence numbers) and its `__rtp_history` (whether a NACK was answered).
- The synchronous receive path (`receive_media_synchronously`): aioice `Connection`'s
  `data_received` (replaced per connection) and `_queue` (media waits behind anything
  queued), the DTLS transport's `_rx_srtp`, `_handle_rtp_data` and `_handle_rtcp_data`;
  the connection's `_protocols`, whose `StunProtocol.datagram_received` is wrapped per
  protocol (`MediaFirst`: media skips aioice's attempt to parse it as STUN); asyncio's
  `Future._asyncio_future_blocking`, which a Task clears before waiting on a future
  (`run_to_completion` steps a coroutine the same way).
- The native receive path (`publish_receive`): the receiver's `__codecs` and
  `__rtx_ssrc` (which SSRC and payload type a packet is, as its own routing decides),
  `__remote_streams` (given our statistics, so its RTCP task sends receiver reports of
  what the C receiver counted) and `__rtcp_ssrc` (the sender SSRC of our REMB); the DTLS
  transport's `_rtp_router` and `_rtp_header_extensions_map` (its `__ids`: the
  negotiated audio-level id) and `_send_rtp`; libsrtp's `srtp_unprotect` through
  pylibsrtp's binding; a selector loop's `_add_reader` (the nominated socket is read by
  our drain instead of the transport's `_read_ready`).
- Control reads (`ControlReads`), asyncio rather than aiortc internals: a selector
  loop's `_remove_reader` (the public `remove_reader` refuses a transport's descriptor)
  and a UDP transport's `_sock_fd`, `_loop` and `_read_ready` (reads one datagram into
  its protocol); aioice's `StunProtocol.transport`.
- `RTCIceGatherer._connection` and aioice `Connection` gathering fields: host candidates
  on configured addresses (aioice skips loopback) and within a UDP port range.
- aioice's `turn.TurnTransport` (the transport of a relayed candidate: no socket, no
  `is_closing()`, `sendto()` relays through the TURN client) and the connection's
  `turn_transport` / `turn_ssl`: the direct send path over a relayed pair, and
  `testing.selected_pair()` reporting how a relayed pair reaches its TURN server.
- `RTCPeerConnection.__connect`: the task aiortc starts (and never awaits) after each
  description; `PeerConnection` overrides it to retrieve its errors (see there). Its
  `__certificates`: fingerprints computed once per connection.
- The ICE transport's `_send` / `_recv` (what DTLS sends and reads through): wrapped by
  the test-support `filter_datagrams` and `wrap_receive`.
"""

from __future__ import annotations

import asyncio
import warnings
from asyncio import selector_events, transports

import aioice
import aiortc
import pylibsrtp
from aioice import ice as aioice_ice
from aioice import turn as aioice_turn
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc import rtcrtpreceiver as aiortc_rtcrtpreceiver
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from pylibsrtp import _binding as srtp_binding

from sfu.errors import AdapterError

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

RX_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
RX_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RX_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
RX_SEND_PLI = "_send_rtcp_pli"
RX_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
RX_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
RX_SEND_NACK = "_send_rtcp_nack"
RX_SEND_RTCP = "_send_rtcp"
RX_ESTIMATOR_CLASS = "RemoteBitrateEstimator"
RX_PACKET_DATA = "_data"
TX_SEND_KEYFRAME = "_send_keyframe"
TX_STREAM_ID = "_stream_id"
TX_TRACK_ID = "_track_id"
TX_SSRC = "_ssrc"
TX_RTX_SSRC = "_rtx_ssrc"
TX_RETRANSMIT = "_retransmit"
TX_SR_PACKETS = "_RTCRtpSender__packet_count"
TX_SR_OCTETS = "_RTCRtpSender__octet_count"
TX_LSR = "_RTCRtpSender__lsr"
TX_LSR_TIME = "_RTCRtpSender__lsr_time"
TX_RTCP_STARTED = "_RTCRtpSender__rtcp_started"
TX_RTCP_EXITED = "_RTCRtpSender__rtcp_exited"
TX_RTCP_TASK = "_RTCRtpSender__rtcp_task"
TX_FIELDS = (
    TX_SSRC,
    TX_RTX_SSRC,
    TX_SR_PACKETS,
    TX_SR_OCTETS,
    TX_LSR,
    TX_LSR_TIME,
    TX_RTCP_STARTED,
    TX_RTCP_EXITED,
    TX_RTCP_TASK,
)
TX_RUN_RTCP = "_run_rtcp"
TX_SEND_RTCP = "_send_rtcp"
TX_RTP_HISTORY = "_RTCRtpSender__rtp_history"
TX_ENCODER = "_RTCRtpSender__encoder"
DTLS_STATE = "_state"
DTLS_TX_SRTP = "_tx_srtp"
DTLS_RX_SRTP = "_rx_srtp"
DTLS_HANDLE_RTP = "_handle_rtp_data"
DTLS_HANDLE_RTCP = "_handle_rtcp_data"
DTLS_HEADER_EXTENSIONS = "_rtp_header_extensions_map"
DTLS_RTP_ROUTER = "_rtp_router"
ROUTER_MID_TABLE = "mid_table"
ROUTER_SSRC_TABLE = "ssrc_table"
ROUTER_RECEIVERS = "receivers"
DTLS_SEND_RTP = "_send_rtp"
EXTENSION_IDS = "_HeaderExtensionsMap__ids"
RX_CODECS = "_RTCRtpReceiver__codecs"
RX_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
RX_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
RX_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
ICE_DATA_RECEIVED = "data_received"
ICE_QUEUE = "_queue"
ICE_PROTOCOLS = "_protocols"
ICE_NOMINATED = "_nominated"
ICE_TRANSPORT_SEND = "_send"
ICE_TRANSPORT_RECV = "_recv"
LOOP_REMOVE_READER = "_remove_reader"
LOOP_ADD_READER = "_add_reader"
TRANSPORT_READ_READY = "_read_ready"
TRANSPORT_SOCK_FD = "_sock_fd"
TRANSPORT_LOOP = "_loop"
FUTURE_BLOCKING = "_asyncio_future_blocking"
ASYNCIO_DATAGRAM_TRANSPORT = "_SelectorDatagramTransport"
ASYNCIO_SELECTOR_TRANSPORT = "_SelectorTransport"
ASYNCIO_FLOW_CONTROL = "_FlowControlMixin"
PC_CERTIFICATES = "_RTCPeerConnection__certificates"
PC_CONNECT = "_RTCPeerConnection__connect"
SRTP_SESSION_FIELDS = ("_cdata", "_srtp")
GATHERER_CONNECTION = "_connection"
ICE_CONNECTION_FIELDS = (
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
ICE_CONNECTION_METHODS = ("gather_candidates", "get_component_candidates")
AIOICE_MODULE_NAMES = ("StunProtocol", "server_reflexive_candidate", "get_host_addresses")


def require(obj: object, name: str) -> None:
    """Raise `AdapterError` unless `obj` has attribute `name`."""
    if not hasattr(obj, name):
        raise AdapterError(
            f"{type(obj).__name__} has no attribute {name!r}: aiortc/aioice internals changed "
            f"(tested with aiortc {AIORTC_VERSION}, aioice {AIOICE_VERSION}); "
            "run tests/sfu/test_adapter_canary.py"
        )


def require_field(cls: type, name: str, method: str = "__init__") -> None:
    """Raise `AdapterError` unless `cls.<method>` (its own, not inherited) uses attribute
    `name`: how to check an instance attribute without an instance (an `RTCRtpSender`
    needs an event loop)."""
    code = getattr(vars(cls).get(method), "__code__", None)
    if code is None or name not in code.co_names:
        raise AdapterError(
            f"{cls.__name__}.{method} no longer sets {name!r}: aiortc/aioice internals changed "
            f"(tested with aiortc {AIORTC_VERSION}, aioice {AIOICE_VERSION}); "
            "run tests/sfu/test_adapter_canary.py"
        )


class ProbeTransport:
    """The least a receiver needs to be built without a connection (for the check)."""

    state = "new"


def check_internals() -> None:
    """Raise `AdapterError` if any internal the adapter relies on is missing."""
    receiver = RTCRtpReceiver("video", ProbeTransport())  # type: ignore[arg-type]
    for name in (
        RX_JITTER_BUFFER,
        RX_DECODER_QUEUE,
        RX_DECODER_THREAD,
        RX_SEND_PLI,
        RX_NACK_GENERATOR,
        RX_BITRATE_ESTIMATOR,
        RX_SEND_NACK,
        RX_SEND_RTCP,
        RX_CODECS,
        RX_RTX_SSRC,
        RX_REMOTE_STREAMS,
    ):
        require(receiver, name)
    require_field(RTCRtpReceiver, RX_RTCP_SSRC, "_set_rtcp_ssrc")
    require(aiortc_rtcrtpreceiver, RX_ESTIMATOR_CLASS)
    require_field(RTCRtpReceiver, RX_PACKET_DATA, "_handle_rtp_packet")
    for name in (TX_SEND_KEYFRAME, TX_RETRANSMIT, TX_RUN_RTCP, TX_SEND_RTCP, "replaceTrack"):
        require(RTCRtpSender, name)
    for name in (*TX_FIELDS, TX_RTP_HISTORY, TX_STREAM_ID, TX_ENCODER):
        require_field(RTCRtpSender, name)
    require_field(RTCRtpSender, TX_TRACK_ID, "replaceTrack")
    require(RTCPeerConnection, PC_CONNECT)
    require_field(RTCPeerConnection, PC_CERTIFICATES)
    gatherer = RTCIceGatherer(iceServers=[])
    ice = RTCIceTransport(gatherer)
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    for name in (
        DTLS_STATE,
        DTLS_TX_SRTP,
        DTLS_RX_SRTP,
        DTLS_HANDLE_RTP,
        DTLS_HANDLE_RTCP,
        DTLS_HEADER_EXTENSIONS,
        DTLS_RTP_ROUTER,
        DTLS_SEND_RTP,
    ):
        require(dtls, name)
    require(getattr(dtls, DTLS_HEADER_EXTENSIONS), EXTENSION_IDS)
    require(getattr(getattr(dtls, DTLS_HEADER_EXTENSIONS), EXTENSION_IDS), "audio_level")
    require(getattr(dtls, DTLS_RTP_ROUTER), "route_rtp")
    require(getattr(dtls, DTLS_RTP_ROUTER), ROUTER_MID_TABLE)
    require(getattr(dtls, DTLS_RTP_ROUTER), ROUTER_SSRC_TABLE)
    require(getattr(dtls, DTLS_RTP_ROUTER), ROUTER_RECEIVERS)
    require(gatherer, GATHERER_CONNECTION)
    connection = getattr(gatherer, GATHERER_CONNECTION)
    for name in (
        *ICE_CONNECTION_FIELDS,
        *ICE_CONNECTION_METHODS,
        ICE_NOMINATED,
        ICE_DATA_RECEIVED,
        ICE_QUEUE,
    ):
        require(connection, name)
    for name in (GATHERER_CONNECTION, ICE_TRANSPORT_SEND, ICE_TRANSPORT_RECV):
        require(ice, name)
    for name in AIOICE_MODULE_NAMES:
        require(aioice_ice, name)
    require(srtp_binding.lib, "srtp_protect")
    require(srtp_binding.lib, "srtp_unprotect")
    require(srtp_binding.lib, "srtp_unprotect_rtcp")
    require(pylibsrtp, "SRTP_MAX_TRAILER_LEN")
    require(pylibsrtp, "ERRORS")
    session = pylibsrtp.Session()
    for name in SRTP_SESSION_FIELDS:
        require(session, name)
    require(aioice_turn, "UDP_SOCKET_BUFFER_SIZE")
    require(aioice_turn, "TurnTransport")
    for name in ("sendto", "get_extra_info"):
        require(aioice_turn.TurnTransport, name)
    require(asyncio.Future, FUTURE_BLOCKING)
    require(selector_events.BaseSelectorEventLoop, LOOP_REMOVE_READER)
    require(selector_events.BaseSelectorEventLoop, LOOP_ADD_READER)
    # The classes of a selector loop's UDP transports (`loop.create_datagram_endpoint`).
    for module, name in (
        (selector_events, ASYNCIO_DATAGRAM_TRANSPORT),
        (selector_events, ASYNCIO_SELECTOR_TRANSPORT),
        (transports, ASYNCIO_FLOW_CONTROL),
    ):
        require(module, name)
    require(getattr(selector_events, ASYNCIO_DATAGRAM_TRANSPORT), TRANSPORT_READ_READY)
    require_field(getattr(selector_events, ASYNCIO_SELECTOR_TRANSPORT), TRANSPORT_SOCK_FD)
    require_field(getattr(transports, ASYNCIO_FLOW_CONTROL), TRANSPORT_LOOP)


def check_versions() -> None:
    """Warn when the installed aiortc / aioice are not the versions the adapter was
    tested with."""
    found = (aiortc.__version__, aioice.__version__)
    if found != (AIORTC_VERSION, AIOICE_VERSION):
        warnings.warn(
            f"sfu.aiortc_adapter was tested with aiortc {AIORTC_VERSION} / aioice "
            f"{AIOICE_VERSION}, found {found[0]} / {found[1]}: run the adapter canary test",
            RuntimeWarning,
            stacklevel=2,
        )


check_internals()
check_versions()

"""What tests, benchmarks and the synthetic peers (`scripts/`) may use of the adapter:
inspecting a connection (its nominated pair, ICE servers and relay settings, the receive
path and RTCP task installed), injecting loss, holding a handshake, and the receiver and
sender hooks a synthetic peer needs. `scripts/` import the adapter only through this
module (`tests/sfu/test_adapter_boundary.py`)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.rtp import RtpPacket

from sfu.aiortc_adapter.internals import (
    DTLS_HEADER_EXTENSIONS,
    DTLS_SEND_RTP,
    GATHERER_CONNECTION,
    ICE_DATA_RECEIVED,
    ICE_PROTOCOLS,
    ICE_TRANSPORT_RECV,
    ICE_TRANSPORT_SEND,
    RX_BITRATE_ESTIMATOR,
    require,
)
from sfu.aiortc_adapter.publish_receive import (
    FrameTarget,
    NativePublishReceive,
    TargetOf,
    receive_natively,
)
from sfu.aiortc_adapter.receive_path import (
    MediaFirst,
    SrtpShortcut,
    receive_media_synchronously,
)
from sfu.aiortc_adapter.receivers import intercept_receiver, send_pli, send_remb
from sfu.aiortc_adapter.senders import (
    on_keyframe_request,
    runs_idle_rtcp,
    sender_ssrc,
    use_packer,
)
from sfu.aiortc_adapter.srtp import srtp_unprotect_pointers, srtp_unprotect_rtcp_pointers
from sfu.aiortc_adapter.transports import (
    ice_connection,
    ice_connections,
    is_relayed,
    nominated_pair,
)

__all__ = [
    "Drain",
    "FrameTarget",
    "NativeFrames",
    "SelectedPair",
    "filter_datagrams",
    "ice_servers_in_use",
    "intercept_datagrams",
    "intercept_receiver",
    "is_rtp",
    "no_bandwidth_estimate",
    "on_keyframe_request",
    "receive_frames_natively",
    "receive_paths",
    "receive_synchronously",
    "relay_settings_in_use",
    "runs_idle_rtcp",
    "selected_pair",
    "send_pli",
    "send_raw_rtp",
    "send_remb",
    "sender_ssrc",
    "srtp_unprotect_pointers",
    "srtp_unprotect_rtcp_pointers",
    "use_packer",
    "wrap_receive",
]


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
    dtls = transceivers[0].receiver.transport
    connection = ice_connection(dtls)
    pair = nominated_pair(dtls)
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
            transceiver.receiver.transport.transport.iceGatherer, GATHERER_CONNECTION
        )
        servers.append((connection.stun_server, connection.turn_server))
    return servers


def relay_settings_in_use(pc: RTCPeerConnection) -> list[tuple[str, str, bool]]:
    """(transport policy ``"ALL"``/``"RELAY"``, TURN transport, TURN over TLS) of each ICE
    connection of `pc`, as aioice sees them."""
    settings = []
    for transceiver in pc.getTransceivers():
        connection = getattr(
            transceiver.receiver.transport.transport.iceGatherer, GATHERER_CONNECTION
        )
        settings.append(
            (connection._transport_policy.name, connection.turn_transport, connection.turn_ssl)
        )
    return settings


def is_rtp(datagram: bytes) -> bool:
    """True for an (S)RTP media packet, as opposed to RTCP, DTLS or STUN."""
    return len(datagram) >= 2 and 128 <= datagram[0] < 192 and not 192 <= datagram[1] <= 223


async def send_raw_rtp(
    pc: RTCPeerConnection,
    ssrc: int,
    payload_type: int,
    sequence_number: int,
    payload: bytes,
    mid: str | None = None,
) -> None:
    """Send one RTP packet of the caller's making on `pc`'s (bundled) transport, SRTP
    protected like its own media, with the `mid` header extension when given: what a
    misbehaving publisher sends (an SSRC or a mid nobody negotiated)."""
    dtls = pc.getTransceivers()[0].sender.transport
    packet = RtpPacket(
        payload_type=payload_type, sequence_number=sequence_number, ssrc=ssrc, marker=1
    )
    packet.payload = payload
    packet.extensions.mid = mid
    await getattr(dtls, DTLS_SEND_RTP)(packet.serialize(getattr(dtls, DTLS_HEADER_EXTENSIONS)))


async def send_raw_rtcp(pc: RTCPeerConnection, packet: bytes) -> None:
    """Send one RTCP compound packet of the caller's making on `pc`'s (bundled)
    transport, SRTCP protected: what a participant flooding the server's RTCP sends."""
    dtls = pc.getTransceivers()[0].sender.transport
    await getattr(dtls, DTLS_SEND_RTP)(packet)


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
        require(ice, ICE_TRANSPORT_SEND)
        require(ice, ICE_TRANSPORT_RECV)
        if drop_outgoing is not None:
            send = getattr(ice, ICE_TRANSPORT_SEND)
            setattr(ice, ICE_TRANSPORT_SEND, _filtered_send(send, drop_outgoing))
        if drop_incoming is not None:
            recv = getattr(ice, ICE_TRANSPORT_RECV)
            setattr(ice, ICE_TRANSPORT_RECV, _filtered_recv(recv, drop_incoming))
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


Drain = Callable[[socket.socket, Callable[[bytes, Any], None]], None]
"""``drain(sock, pass_on)``: read what `sock` holds now (without blocking) and hand each
datagram it does not consume to ``pass_on(data, addr)`` (aioice), in order."""


def intercept_datagrams(
    pc: RTCPeerConnection, handler: Callable[[bytes], bool], drain: Drain | None = None
) -> int:
    """Offer every datagram whose first byte is 128-191 ((S)RTP or (S)RTCP) that `pc`'s
    ICE sockets receive to `handler`, in the socket's callback; `handler` returning True
    consumes it, else it goes on to aioice as usual.

    For receivers that only count packets from the clear RTP header: aioice would first
    try to parse each datagram as STUN, then queue it for the DTLS transport's task (an
    event-loop hand-off per packet). Each time the loop reads a datagram, what else the
    socket holds is read too (by `drain` if given, on a duplicate of the socket closed with
    its transport; else up to 64 ``recvfrom``), so a busy socket costs one wake-up per
    batch rather than per datagram. Call it once the transports exist (after the first
    offer/answer is applied); returns the number of sockets newly intercepted.
    """
    wrapped = 0
    for _dtls, connection in ice_connections(pc):
        for protocol in getattr(connection, ICE_PROTOCOLS):
            if not isinstance(protocol.datagram_received, _DatagramTap):
                tap = _DatagramTap(protocol.datagram_received, handler, drain)
                tap.drain_from(getattr(protocol, "transport", None))
                protocol.datagram_received = tap
                wrapped += 1
    return wrapped


class _DatagramTap:
    """A `StunProtocol.datagram_received` that offers media datagrams to a handler first,
    then drains the socket."""

    __slots__ = ("_drain", "_handler", "_other", "_sock")

    BATCH = 64

    def __init__(
        self,
        other: Callable[[bytes, Any], None],
        handler: Callable[[bytes], bool],
        drain: Drain | None,
    ) -> None:
        self._other = other
        self._handler = handler
        self._drain = drain or self._recvfrom_drain
        self._sock: socket.socket | None = None

    def drain_from(self, transport: Any) -> None:
        raw = transport.get_extra_info("socket") if transport is not None else None
        if raw is None or transport.is_closing():
            return  # a relayed candidate: datagrams come from the TURN client
        sock = self._sock = raw.dup()
        sock.setblocking(False)
        close = transport.close

        def close_both() -> None:
            self._sock = None
            sock.close()
            close()

        transport.close = close_both

    def __call__(self, data: bytes, addr: Any) -> None:
        if not (data and 127 < data[0] < 192 and self._handler(data)):
            self._other(data, addr)
        if self._sock is not None:
            self._drain(self._sock, self._other)

    def _recvfrom_drain(self, sock: socket.socket, pass_on: Callable[[bytes, Any], None]) -> None:
        handler = self._handler
        for _ in range(self.BATCH):
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:  # empty (BlockingIOError), or closed meanwhile
                return
            if not (data and 127 < data[0] < 192 and handler(data)):
                pass_on(data, addr)


def receive_synchronously(pc: RTCPeerConnection) -> int:
    """The server's receive path for `pc` (`receive_media_synchronously`): keyed SRTP and
    SRTCP handled in the socket's callback, not through aioice's queue and the DTLS
    transport's task. Install it before `intercept_datagrams`, which then sees datagrams
    first. Returns the ICE connections changed."""
    return receive_media_synchronously(pc)


NativeFrames = NativePublishReceive
"""What `receive_frames_natively` installs (``close()`` it with the connection)."""


def receive_frames_natively(
    pc: RTCPeerConnection, target_of: TargetOf, max_wait: float
) -> list[NativeFrames]:
    """The server's native receive path (`sfu.native_receive`: SRTP, RTP parsing, NACKs
    and receiver reports, frame assembly in C) for the media `pc` receives, frames
    handed to ``target_of(receiver)`` (a `FrameTarget`; None: dropped), without REMB.
    For a synthetic subscriber that reads its sockets itself: call it after
    `receive_synchronously` and `intercept_datagrams`; the datagrams the handler does
    not consume go to the C receiver, which never takes the socket over. Without the
    extension nothing changes (aiortc's receivers get the media). Returns what it
    installed."""
    return receive_natively(pc, target_of, max_wait=max_wait, remb_bitrate=None, take_socket=False)


def no_bandwidth_estimate(receiver: RTCRtpReceiver) -> None:
    """Drop `receiver`'s bandwidth estimator (aiortc feeds it every packet, for REMBs):
    for a synthetic subscriber whose REMBs are never sent."""
    require(receiver, RX_BITRATE_ESTIMATOR)
    setattr(receiver, RX_BITRATE_ESTIMATOR, None)


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
        require(ice, ICE_TRANSPORT_RECV)
        setattr(ice, ICE_TRANSPORT_RECV, wrap(getattr(ice, ICE_TRANSPORT_RECV)))
    return len(transports)


def receive_paths(pc: RTCPeerConnection) -> list[tuple[bool, list[bool]]]:
    """Per ICE connection of `pc`: whether keyed SRTP takes the synchronous shortcut, and
    for each of its sockets whether media skips aioice's STUN parse (what
    `receive_media_synchronously` installs)."""
    return [
        (
            isinstance(getattr(connection, ICE_DATA_RECEIVED), SrtpShortcut),
            [
                isinstance(protocol.datagram_received, MediaFirst)
                for protocol in getattr(connection, ICE_PROTOCOLS)
            ],
        )
        for _dtls, connection in ice_connections(pc)
    ]

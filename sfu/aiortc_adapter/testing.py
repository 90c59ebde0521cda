"""What tests, benchmarks and the synthetic peers (`scripts/`) may use of the adapter:
inspecting a connection (its nominated pair, ICE servers and relay settings, the receive
path and RTCP task installed), injecting loss, holding a handshake, and the receiver and
sender hooks a synthetic peer needs. `scripts/` import the adapter only through this
module (`tests/sfu/test_adapter_boundary.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection

from sfu.aiortc_adapter.internals import (
    GATHERER_CONNECTION,
    ICE_DATA_RECEIVED,
    ICE_PROTOCOLS,
    ICE_TRANSPORT_RECV,
    ICE_TRANSPORT_SEND,
    require,
)
from sfu.aiortc_adapter.receive_path import MediaFirst, SrtpShortcut
from sfu.aiortc_adapter.receivers import intercept_receiver, send_pli
from sfu.aiortc_adapter.senders import (
    on_keyframe_request,
    runs_idle_rtcp,
    sender_ssrc,
    use_packer,
)
from sfu.aiortc_adapter.transports import (
    ice_connection,
    ice_connections,
    is_relayed,
    nominated_pair,
)

__all__ = [
    "SelectedPair",
    "filter_datagrams",
    "ice_servers_in_use",
    "intercept_receiver",
    "is_rtp",
    "on_keyframe_request",
    "receive_paths",
    "relay_settings_in_use",
    "runs_idle_rtcp",
    "selected_pair",
    "send_pli",
    "sender_ssrc",
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

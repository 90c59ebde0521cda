"""What the media plane reads off aiortc's DTLS and ICE transports: their state, SRTP
sessions, the nominated candidate pair, and whether that pair is relayed."""

from __future__ import annotations

from typing import Any

import pylibsrtp
from aioice import Connection
from aioice import turn as aioice_turn
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState

from sfu.aiortc_adapter.internals import (
    DTLS_STATE,
    DTLS_TX_SRTP,
    GATHERER_CONNECTION,
    ICE_NOMINATED,
)


def ice_connections(pc: RTCPeerConnection) -> list[tuple[RTCDtlsTransport, Connection]]:
    """Each DTLS transport of `pc` (one with BUNDLE) and the aioice connection under it."""
    found: dict[int, tuple[RTCDtlsTransport, Connection]] = {}
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is not None and id(dtls) not in found:
            found[id(dtls)] = (dtls, getattr(dtls.transport, GATHERER_CONNECTION))
    return list(found.values())


def ice_connection(dtls: RTCDtlsTransport) -> Connection:
    """The aioice connection under `dtls`."""
    connection: Connection = getattr(dtls.transport, GATHERER_CONNECTION)
    return connection


def dtls_connected(dtls: RTCDtlsTransport) -> bool:
    """True while `dtls` has completed its handshake and is not closed: what aiortc's own
    send path checks before every packet."""
    return getattr(dtls, DTLS_STATE) is DtlsState.CONNECTED


def tx_srtp(dtls: RTCDtlsTransport) -> pylibsrtp.Session | None:
    """The SRTP session `dtls` protects outgoing packets with (None before the keys exist)."""
    session: pylibsrtp.Session | None = getattr(dtls, DTLS_TX_SRTP)
    return session


def nominated_pair(dtls: RTCDtlsTransport) -> Any:
    """aioice's nominated `CandidatePair` of RTP's component under `dtls`, or None before
    ICE completed. Its public `remote_addr` and `protocol.transport` are where and
    through what packets go."""
    return getattr(ice_connection(dtls), ICE_NOMINATED).get(1)


def is_relayed(transport: object) -> bool:
    """True for the transport of a relayed candidate (aioice's `TurnTransport`): it has no
    socket of its own, packets go through the TURN client (``sendto`` wraps them in
    ChannelData or Send indications)."""
    return isinstance(transport, aioice_turn.TurnTransport)


def is_closing(transport: Any) -> bool:
    """`transport.is_closing()`; aioice's `TurnTransport` has none (its `sendto()` drops
    data once closed), so a relayed transport never counts as closing."""
    closing = getattr(transport, "is_closing", None)
    return bool(closing()) if closing is not None else False

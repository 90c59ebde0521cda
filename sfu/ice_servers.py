"""Which STUN and TURN URLs an aiortc peer connection actually uses.

Browsers try every URL they are given; aiortc (1.16) takes the first ``stun:`` URL and the
first TURN URL it supports (``turn:`` over UDP or TCP, ``turns:`` over TCP only) and
ignores the rest. So the order decides: this module picks, out of everything configured,
the one STUN URL and the one TURN URL that match the transport wanted (for instance TCP
for a client whose network drops UDP).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sfu.config import IceServer, TurnTransport

_TURN_URL = re.compile(
    r"(?P<scheme>turns?):(?P<host>[^?:]+)(?::(?P<port>[0-9]+))?(?:\?transport=(?P<transport>\w+))?"
)


def turn_transport(url: str) -> TurnTransport | None:
    """How `url` reaches its TURN server (``None``: not a TURN URL aiortc can use).

    ``turn:`` defaults to UDP; ``turns:`` is TLS over TCP (aiortc has no DTLS client).
    """
    match = _TURN_URL.fullmatch(url)
    if match is None:
        return None
    transport = (match["transport"] or "").lower()
    if match["scheme"] == "turns":
        return "tls" if transport in ("", "tcp") else None
    if transport in ("", "udp"):
        return "udp"
    return "tcp" if transport == "tcp" else None


@dataclass(frozen=True)
class SelectedServers:
    """The STUN URL and the TURN URL (with its credentials) a connection will use."""

    stun: str | None
    turn: str | None
    username: str | None = None
    credential: str | None = None

    @property
    def turn_transport(self) -> TurnTransport | None:
        return turn_transport(self.turn) if self.turn else None

    def as_servers(self) -> tuple[IceServer, ...]:
        """At most two servers, each with exactly one URL, in aiortc's terms."""
        servers = []
        if self.stun is not None:
            servers.append(IceServer((self.stun,)))
        if self.turn is not None:
            servers.append(IceServer((self.turn,), self.username, self.credential))
        return tuple(servers)


def select_servers(
    servers: Sequence[IceServer], preference: Sequence[TurnTransport]
) -> SelectedServers:
    """The first ``stun:`` URL, and the TURN URL whose transport ranks best in
    `preference` (ties: configuration order); transports not in `preference` are
    never chosen."""
    stun = next((url for server in servers for url in server.urls if url.startswith("stun:")), None)
    ranked: list[tuple[int, int, str, IceServer]] = []
    order = 0
    for server in servers:
        for url in server.urls:
            transport = turn_transport(url)
            if transport is not None and transport in preference:
                ranked.append((list(preference).index(transport), order, url, server))
            order += 1
    if not ranked:
        return SelectedServers(stun=stun, turn=None)
    _, _, url, server = min(ranked, key=lambda entry: entry[:2])
    return SelectedServers(
        stun=stun, turn=url, username=server.username, credential=server.credential
    )

"""ICE gathering: host candidates on configured addresses and within a UDP port range."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import weakref
from collections.abc import Sequence
from typing import Any

from aioice import Candidate, Connection, TransportPolicy
from aioice import ice as aioice_ice
from aioice import turn as aioice_turn
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection
from aiortc.rtcicetransport import RTCIceGatherer

from sfu.aiortc_adapter.internals import GATHERER_CONNECTION

logger = logging.getLogger(__name__)

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
        connection: Connection = getattr(gatherer, GATHERER_CONNECTION)
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

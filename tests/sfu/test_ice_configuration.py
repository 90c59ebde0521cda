"""ICE settings: explicit servers, gather addresses, port range, announced address."""

from __future__ import annotations

from dataclasses import replace

import psutil
import pytest

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.client import MediaClient
from sfu import IceServer, MediaConfig, ParticipantId, create_peer_connection
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.sdp import parse


async def test_aiortc_never_falls_back_to_its_default_stun_server() -> None:
    pc = create_peer_connection(MediaConfig())
    stun = create_peer_connection(
        MediaConfig(ice_servers=[IceServer(urls=("stun:stun.example.org:3478",))])
    )
    try:
        pc.addTransceiver("audio")
        stun.addTransceiver("audio")
        assert adapter_testing.ice_servers_in_use(pc) == [(None, None)]
        assert adapter_testing.ice_servers_in_use(stun) == [(("stun.example.org", 3478), None)]
    finally:
        await pc.close()
        await stun.close()


async def test_host_candidates_use_the_port_range_and_media_flows() -> None:
    config = MediaConfig(
        host_addresses=("127.0.0.1",), port_range=(41000, 41019), stats_interval=None
    )
    room = Room(config)
    try:
        client = await room.join("teacher")
        await room.join("student", video=False, audio=False)
        await wait_for(
            lambda: (s := room.sink("student", "teacher", "video")) is not None and s.decoded >= 3,
            what="media through ranged ports",
        )
        for participant in room.participants.values():
            for pc in (participant.publish_pc, participant.subscribe_pc):
                if pc is None or pc.localDescription is None:
                    continue
                for media in parse(pc.localDescription.sdp).media:
                    for candidate in media.ice_candidates:
                        assert candidate.ip == "127.0.0.1" and 41000 <= candidate.port <= 41019
        assert client.publish_pc is not None
    finally:
        await room.close()


async def test_the_announced_address_replaces_the_bound_one_in_answers() -> None:
    config = MediaConfig(
        host_addresses=("127.0.0.1",), announced_address="203.0.113.7", stats_interval=None
    )
    room = Room(config)
    client = MediaClient(LOOPBACK, video=room.clip)
    try:
        participant = room.router.add_participant(ParticipantId("natted"))
        answer = await participant.publish(await client.publish_offer())
        candidates = [c for m in parse(answer).media for c in m.ice_candidates]
        assert candidates and all(c.ip == "203.0.113.7" for c in candidates)
        assert "127.0.0.1" not in answer
        assert participant.publish_pc is not None
        local = participant.publish_pc.localDescription
        assert local is not None and "127.0.0.1" in local.sdp  # still bound on loopback
    finally:
        await client.close()  # never applied the answer: no packet left loopback
        await room.close()


async def test_every_udp_socket_the_server_opens_is_in_its_port_range() -> None:
    """The range holds for all of the media plane's sockets, not just the candidates it
    announces (clients here use a range of their own, to tell them apart)."""
    before = {c.laddr for c in psutil.Process().net_connections(kind="udp")}
    server = MediaConfig(
        host_addresses=("127.0.0.1",), port_range=(41100, 41139), stats_interval=None
    )
    room = Room(server)
    room.config = replace(server, port_range=(41200, 41239))  # what Room.join gives clients
    try:
        await room.join("teacher")
        await room.join("student", video=False, audio=False)
        await wait_for(
            lambda: (
                (sink := room.sink("student", "teacher", "video")) is not None and sink.decoded >= 3
            ),
            what="media through ranged ports",
        )
        opened = [
            c.laddr.port
            for c in psutil.Process().net_connections(kind="udp")
            if c.laddr not in before
        ]
        ours = [port for port in opened if 41100 <= port <= 41139]
        clients = [port for port in opened if 41200 <= port <= 41239]
        assert len(ours) == 2 and len(clients) == 2, opened  # one per peer connection
        assert sorted(ours + clients) == sorted(opened)
    finally:
        await room.close()


async def test_a_connection_that_finds_the_range_full_fails_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MediaConfig(
        host_addresses=("127.0.0.1",),
        port_range=(41300, 41300),
        ice_connect_timeout=1.0,
        stats_interval=None,
    )
    room = Room(server)
    room.config = replace(server, port_range=None, ice_connect_timeout=None)
    try:
        await room.join("first", audio=False)  # takes the only port
        await room.join("second", video=False, audio=False)  # subscribes: needs a port
        await wait_for(lambda: room.events.disconnected != [], timeout=5, what="a failure")
        assert room.events.disconnected == [("second", "failed")]
        assert "no free UDP port in 41300-41300" in caplog.text
    finally:
        await room.close()

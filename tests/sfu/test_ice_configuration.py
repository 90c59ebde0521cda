"""ICE settings: explicit servers, gather addresses, port range, announced address."""

from __future__ import annotations

from scripts.synthpeer.client import MediaClient
from sfu import IceServer, MediaConfig, ParticipantId, aiortc_adapter, create_peer_connection
from sfu.sdp import parse
from tests.sfu.harness import LOOPBACK, Room, wait_for


async def test_aiortc_never_falls_back_to_its_default_stun_server() -> None:
    pc = create_peer_connection(MediaConfig())
    stun = create_peer_connection(
        MediaConfig(ice_servers=[IceServer(urls=("stun:stun.example.org:3478",))])
    )
    try:
        pc.addTransceiver("audio")
        stun.addTransceiver("audio")
        assert aiortc_adapter.ice_servers_in_use(pc) == [(None, None)]
        assert aiortc_adapter.ice_servers_in_use(stun) == [(("stun.example.org", 3478), None)]
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

"""The server's own peer connections through coturn: forwarding over a relayed pair (both
send paths), and ``SFU_USE_ICE_SERVERS`` giving the server relayed candidates of its own."""

from __future__ import annotations

import pytest

from api.ice_settings import IceSettings
from api.services import SERVICES
from api.turn import SFU_TURN_USER, ice_servers_for
from scripts.coturn_local import LocalCoturn
from scripts.support.loopback import Room
from scripts.synthpeer.peer import ice_servers_from
from sfu import MediaConfig
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.config import SendPath
from tests.network.conftest import SERVER, ClassroomFactory, Network
from tests.network.test_restrictive_network import wait_for

pytestmark = pytest.mark.network


@pytest.mark.parametrize("send_path", ["direct", "aiortc"])
async def test_media_is_forwarded_when_every_pair_is_relayed(
    network: Network, coturn: LocalCoturn, send_path: SendPath
) -> None:
    ice = IceSettings(turn_urls=coturn.config.urls(SERVER), turn_secret=coturn.config.secret)
    config = MediaConfig(
        ice_servers_source=lambda: ice_servers_from(ice_servers_for(ice, SFU_TURN_USER)),
        host_addresses=(SERVER,),
        ice_transport_policy="relay",
        send_path=send_path,
        stats_interval=None,
    )
    room = Room(config)  # the clients use the same relay-only configuration
    try:
        await room.join("teacher")
        await room.join("student", video=False, audio=False)
        await wait_for(
            lambda: (
                (sink := room.sink("student", "teacher", "video")) is not None
                and sink.decoded >= 10
            ),
            what="video forwarded over relayed pairs",
        )
        sink = room.sink("student", "teacher", "video")
        assert sink is not None and sink.decode_errors == 0
        for participant in room.participants.values():
            for pc in (participant.publish_pc, participant.subscribe_pc):
                if pc is None:
                    continue
                pair = adapter_testing.selected_pair(pc)
                assert pair is not None and pair.local_type == "relay", pair
                assert pair.remote_type == "relay" and pair.relay_transport == "udp"
    finally:
        await room.close()


async def test_the_server_gathers_relayed_candidates_with_its_own_credentials(
    coturn: LocalCoturn, classroom: ClassroomFactory
) -> None:
    room = await classroom(
        IceSettings(
            turn_urls=coturn.config.urls(SERVER),
            turn_secret=coturn.config.secret,
            sfu_use_ice_servers=True,
        )
    )
    teacher = await room.teacher_peer()
    live = room.app[SERVICES].rooms.rooms[0]
    member = live.members[room.teacher.id]
    pc = member.participant.publish_pc
    assert pc is not None and pc.localDescription is not None
    types = {
        line.split(" typ ")[1].split()[0]
        for line in pc.localDescription.sdp.splitlines()
        if line.startswith("a=candidate:")
    }
    assert types == {"host", "relay"}
    await teacher.wait_connected()  # (the relayed candidate needed coturn to accept the
    # server's own credential, user "sfu": see tests/api/test_turn.py for its shape)

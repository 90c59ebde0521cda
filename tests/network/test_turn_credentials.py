"""coturn accepts the API's TURN REST credentials and refuses expired or forged ones (a
TURN Allocate answered 401, not silence)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioice import stun
from aioice import turn as aioice_turn

from api.ice_settings import IceSettings
from api.turn import turn_credential, turn_password
from scripts.coturn_local import LocalCoturn
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack
from scripts.synthpeer.peer import MediaFailed, SyntheticPeer
from tests.network.conftest import SERVER, ClassroomFactory

pytestmark = pytest.mark.network


async def allocate(turn: LocalCoturn, username: str, password: str, transport: str) -> int | None:
    """Try a TURN allocation; ``None`` on success, else the error code coturn answered."""
    try:
        relay, _ = await aioice_turn.create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=(SERVER, turn.config.port),
            username=username,
            password=password,
            transport=transport,
        )
    except stun.TransactionFailed as failure:
        code: int = failure.response.attributes["ERROR-CODE"][0]
        return code
    relay.close()  # deletes the allocation (Refresh with lifetime 0)
    await asyncio.sleep(0.05)
    return None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_issued_credentials_allocate_and_expired_or_forged_ones_are_refused(
    coturn: LocalCoturn, classroom: ClassroomFactory, transport: str
) -> None:
    secret = coturn.config.secret
    room = await classroom(
        IceSettings(turn_urls=coturn.config.urls(SERVER), turn_secret=secret, turn_ttl_seconds=600)
    )
    issued: dict[str, Any] = await room.api.call("GET", "/ice-servers", token=room.student.token)
    assert issued["ttl"] == 600
    (server,) = issued["iceServers"]
    assert server["username"].endswith(f":{room.student.id}")
    assert await allocate(coturn, server["username"], server["credential"], transport) is None

    expired = turn_credential(secret, room.student.id, ttl_seconds=-60)
    assert await allocate(coturn, expired.username, expired.password, transport) == 401

    forged = turn_credential("not-the-secret", room.student.id, ttl_seconds=600)
    assert await allocate(coturn, forged.username, forged.password, transport) == 401

    # A valid credential whose expiry was pushed back: the HMAC no longer matches.
    expiry, user = server["username"].split(":", 1)
    stretched = f"{int(expiry) + 86400}:{user}"
    assert await allocate(coturn, stretched, server["credential"], transport) == 401
    assert turn_password(secret, stretched) != server["credential"]


async def test_a_relay_only_peer_says_so_when_coturn_refuses_the_servers_credentials(
    coturn: LocalCoturn, classroom: ClassroomFactory
) -> None:
    # The API and coturn disagree on the secret: every credential it issues is refused,
    # and aiortc alone would just gather nothing.
    room = await classroom(
        IceSettings(turn_urls=coturn.config.urls(SERVER), turn_secret="out-of-date")
    )
    student = SyntheticPeer(
        room.api,
        room.student,
        lambda config: MediaClient(config, audio=ToneAudioTrack()),
        class_id=room.class_id,
        host_addresses=(SERVER,),
        relay_only=True,
    )
    room.peers.append(student)
    with pytest.raises(MediaFailed, match="TURN server gave no relayed address"):
        await student.join(publish=True)

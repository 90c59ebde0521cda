"""Stock aiortc clients (`tests.stock_client`, no project code) that may only use relayed
candidates join a class through a real coturn: with ``iceTransportPolicy`` relay a client
sends its checks through its TURN allocation to the candidates the server's SDP lists,
and coturn relays only to peers the client asked permission for, so without those
candidates nothing would connect. Also when the server has relayed candidates of its own
(``SFU_USE_ICE_SERVERS``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from scripts.coturn_local import LocalCoturn
from tests.network.conftest import SERVER, Network
from tests.server_process import ServerProcess
from tests.sfu.bundle_rules import bundle_problems
from tests.stock_client import StockClient, StockRest, each_decoded_the_other, server_candidates

pytestmark = pytest.mark.network
FRAMES = 15


@pytest.fixture(params=[False, True], ids=["server host", "server host and relay"])
def server_relays(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def rest(
    network: Network, coturn: LocalCoturn, server_relays: bool, tmp_path: Path
) -> AsyncIterator[StockRest]:
    """``python -m api`` in the server namespace, its media on the veth address, handing
    out coturn's TURN credentials; and a REST client for it."""
    env = {"DATA_DIR": str(tmp_path / "data"), "ICE_ADDRESSES": SERVER, **coturn.config.env()}
    if server_relays:
        env["SFU_USE_ICE_SERVERS"] = "1"
    server = ServerProcess(env, tmp_path / "server.log")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield StockRest(server.base_url, session)
    finally:
        server.stop()


async def test_relay_only_stock_aiortc_clients_connect_with_the_servers_candidates(
    rest: StockRest, server_relays: bool
) -> None:
    teacher_account = await rest.sign_up("Tess", "tess@relay.test", "teacher")
    student_account = await rest.sign_up("Sam", "sam@relay.test", "student")
    class_id = await rest.live_class(teacher_account, [student_account])
    clients = [
        StockClient(rest, account, class_id, relay_only=True)
        for account in (teacher_account, student_account)
    ]
    teacher, student = clients
    try:
        for client in clients:
            joined = await client.join()
            assert any(url.startswith("turn:") for s in joined["iceServers"] for url in s["urls"])
            await client.publish_media()

        def both_decoded() -> bool:
            return each_decoded_the_other(teacher, student, FRAMES)

        deadline = time.monotonic() + 30
        while not both_decoded():
            assert time.monotonic() < deadline, [c.decoded for c in clients]
            await asyncio.sleep(0.05)
        for client in clients:
            assert client.connected()
            assert client.errors == [] and client.failures == []
            for connection, sdp_type in ((client.publish, "answer"), (client.subscribe, "offer")):
                assert connection is not None
                assert connection.local_candidate_types() == {"relay"}
                assert bundle_problems(connection.server_sdp, sdp_type) == []
                listed = server_candidates(connection.server_sdp)
                types = {"host", "relay"} if server_relays else {"host"}
                assert {kind for _, _, kind in listed} == types
                assert {address for address, _, _ in listed} == {SERVER}  # coturn's too
                assert connection.remote_after_sdp == listed
    finally:
        for client in clients:
            await client.close()

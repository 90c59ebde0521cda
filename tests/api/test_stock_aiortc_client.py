"""A client on stock aiortc (no project code: `tests.stock_client`) takes the server's SDP
as it is: in a class run by ``python -m api``, a teacher and a student on plain
`aiortc.RTCPeerConnection` publish and decode each other's camera and microphone, and
each connection knows the server's candidates from the server's SDP, so its own checks
find the server (not only the server's checks finding it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import ifaddr
import pytest
from aiortc import RTCBundlePolicy, RTCPeerConnection

from tests.server_process import ServerProcess
from tests.sfu.bundle_rules import bundle_problems
from tests.stock_client import StockClient, StockRest, each_decoded_the_other, server_candidates

FRAMES = 15


def _has_host_address() -> bool:
    """Stock aiortc gathers on every address but 127.0.0.1 and ::1."""
    return any(
        ip.ip not in ("127.0.0.1", ("::1", 0, 0)) for a in ifaddr.get_adapters() for ip in a.ips
    )


pytestmark = pytest.mark.skipif(
    not _has_host_address(), reason="stock aiortc gathers no candidate on loopback alone"
)


@pytest.fixture
async def rest(tmp_path: Path) -> AsyncIterator[StockRest]:
    """A real server process whose media sockets are on 127.0.0.1, and a REST client."""
    server = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "ICE_ADDRESSES": "127.0.0.1"},
        tmp_path / "server.log",
    )
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield StockRest(server.base_url, session)
    finally:
        server.stop()


async def wait_until(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("policy", [RTCBundlePolicy.MAX_BUNDLE, RTCBundlePolicy.BALANCED])
async def test_a_stock_aiortc_client_takes_the_servers_sdp_and_decodes_the_other_side(
    rest: StockRest, policy: RTCBundlePolicy
) -> None:
    teacher_account = await rest.sign_up("Tess", "tess@stock.test", "teacher")
    student_account = await rest.sign_up("Sam", "sam@stock.test", "student")
    class_id = await rest.live_class(teacher_account, [student_account])
    teacher = StockClient(rest, teacher_account, class_id, bundle_policy=policy)
    student = StockClient(rest, student_account, class_id, bundle_policy=policy)
    try:
        for client in (teacher, student):
            joined = await client.join()
            assert joined["iceServers"] == []  # host candidates only
            await client.publish_media()

        def both_decoded() -> bool:
            return each_decoded_the_other(teacher, student, FRAMES)

        await wait_until(both_decoded, 30, "each side decodes the other's audio and video")
        assert teacher.connected() and student.connected()
        for client in (teacher, student):
            assert client.errors == [] and client.failures == []
            for connection, sdp_type in ((client.publish, "answer"), (client.subscribe, "offer")):
                assert connection is not None
                assert type(connection.pc) is RTCPeerConnection  # aiortc's own class
                assert bundle_problems(connection.server_sdp, sdp_type) == []
                listed = server_candidates(connection.server_sdp)
                assert listed and {kind for _, _, kind in listed} == {"host"}
                assert {address for address, _, _ in listed} == {"127.0.0.1"}
                # Known from the SDP alone, before the server could send a check:
                assert connection.remote_after_sdp == listed
                assert listed <= connection.remote_candidates()
    finally:
        for client in (teacher, student):
            await client.close()

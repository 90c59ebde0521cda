"""The classroom page in real Chromium against a cluster: two ``python -m api`` nodes
behind one URL (a loopback TCP balancer), one redis-server, nx-27017. A teacher and a
student join through that URL and see each other; the room's node is killed with
``kill -9``; both pages reconnect and join again by themselves, the class is placed
again on the other node in the same session, and they see each other again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from redis.asyncio import Redis

from api.cluster.room_map import room_key
from scripts.support.balancer import TcpBalancer
from scripts.support.nx27017 import Nx27017Server, running_nx27017
from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.accounts import PASSWORD, email
from tests.browser.pages import ClassroomPage
from tests.browser.test_classroom_page import all_see_each_other_playing
from tests.cluster.nodes import node, seen_by, until
from tests.redis_process import RedisProcess
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser

NAMES = ("a", "b")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[Nx27017Server]:
    with running_nx27017(tmp_path / "nx") as server:
        yield server


@pytest.fixture
async def nodes(
    tmp_path: Path, redis_server: RedisProcess, mongo: Nx27017Server
) -> AsyncIterator[dict[str, ServerProcess]]:
    servers = {name: node(tmp_path, name, redis_server, mongo) for name in NAMES}
    try:
        for server in servers.values():
            await server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


async def test_pages_rejoin_by_themselves_when_the_rooms_node_dies(
    nodes: dict[str, ServerProcess],
    redis_server: RedisProcess,
    browser: Browser,
    request: pytest.FixtureRequest,
) -> None:
    async def both() -> bool:
        return all([await seen_by(s) == list(NAMES) for s in nodes.values()])

    await until(both, 5, "each node sees both")
    balancer = TcpBalancer([("127.0.0.1", s.port) for s in nodes.values()])
    await balancer.start()
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    pages: list[ClassroomPage] = []
    try:
        async with ClassroomApi(balancer.base_url) as api:
            teacher = await api.register("Grace Hopper", email("teacher"), "teacher", PASSWORD)
            alice = await api.register("Alice Student", email("student"), "student", PASSWORD)
            class_id = (await api.create_class(teacher, "Astronomy"))["_id"]
            await api.enrol(teacher, class_id, alice.id)
            session = await api.start_session(teacher, class_id)
        accounts = {"teacher": teacher, "alice": alice}
        by_label = {}
        for label, account in accounts.items():
            page = await ClassroomPage.open(browser, balancer.base_url, label)
            pages.append(page)
            await page.log_in(account.email, PASSWORD)
            await expect(page.by("whoami-name")).to_have_text(account.name)
            await page.select_class(class_id)
            await expect(page.by("join-room")).to_be_enabled()
            await page.by("join-room").click()
            await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")
            by_label[label] = page
        await all_see_each_other_playing(by_label, accounts)

        home = json.loads(await redis.get(room_key(class_id)) or "{}")["nodeId"]
        process = nodes[home].process
        assert process is not None
        process.kill()
        process.wait(10)

        # Each page notices (its socket dropped, or was closed with 1012 once the node's
        # heartbeat lapsed), reconnects through the same URL and joins again.
        for page in pages:
            await expect(page.by("self-tile")).to_have_attribute(
                "data-connection", "connected", timeout=30_000
            )
        await until(
            lambda: _placed_elsewhere(redis, class_id, home, session["sessionId"]),
            10,
            "the class placed again on the live node",
        )
        await all_see_each_other_playing(by_label, accounts)
        for page in pages:
            await expect(page.by("session-status")).to_have_attribute("data-state", "live")
            # Joined again; a join refused meanwhile was one that asked to be retried (the
            # dead node still in the registry), and the page retried it by itself.
            refused = [
                e["message"] for e in page.received("ERROR") if e.get("event") == "JOIN_ROOM"
            ]
            assert len(page.sent("JOIN_ROOM")) == 2 + len(refused), (page.label, refused)
            assert all("try again shortly" in message for message in refused), refused
    finally:
        errors = [f"{page.label}: {error}" for page in pages for error in page.page_errors]
        for page in pages:
            await page.close(request.node.name)
        await balancer.stop()
        await redis.aclose()
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


async def _placed_elsewhere(redis: Redis, class_id: str, dead: str, session_id: str) -> bool:
    placement: dict[str, str] = json.loads(await redis.get(room_key(class_id)) or "{}")
    return placement == {"nodeId": next(n for n in NAMES if n != dead), "sessionId": session_id}

"""The node registry and the room → node map on a real redis-server: heartbeats with an
expiry, a node that stops beating is gone within its TTL, a Redis that restarts empty has
the registry back from the next heartbeats, and a claim is atomic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest
from redis.asyncio import Redis

from api.cluster.placement import NodeInfo, choose_node
from api.cluster.registry import NodeRegistry, live_nodes
from api.cluster.room_map import (
    Chooser,
    NoNodeAvailable,
    claim_room,
    placement_of,
    release_room,
)
from api.cluster.settings import ClusterSettings
from tests.redis_process import RedisProcess


def node(
    node_id: str,
    cpu: float = 0.2,
    *,
    rooms: int = 0,
    participants: int = 0,
    draining: bool = False,
) -> NodeInfo:
    return NodeInfo(
        node_id,
        f"http://{node_id}:3000",
        ("10.0.0.1",),
        2,
        cpu,
        rooms,
        participants,
        draining=draining,
    )


def settings(redis_url: str, node_id: str, ttl: float = 0.6) -> ClusterSettings:
    return ClusterSettings(redis_url, node_id, f"http://{node_id}:3000", None, 0.7, ttl / 3, ttl)


async def test_a_node_is_listed_while_it_beats_and_gone_within_its_ttl_when_it_stops(
    redis_server: RedisProcess, redis_client: Redis
) -> None:
    a = NodeRegistry(redis_client, settings(redis_server.url, "a"), lambda: node("a", rooms=2))
    b = NodeRegistry(redis_client, settings(redis_server.url, "b"), lambda: node("b", cpu=1.5))
    await a.start()
    await b.start()
    try:
        await asyncio.sleep(0.5)
        listed = await live_nodes(redis_client)
        assert [(n.node_id, n.rooms, n.load) for n in listed] == [("a", 2, 0.1), ("b", 0, 0.75)]
        assert [n.node_id for n in a.nodes] == ["a", "b"]  # what /health shows
        # b is killed: no goodbye, its heartbeat lapses.
        assert b.heartbeats is not None
        b.heartbeats.cancel()
        lost = time.monotonic()
        while [n.node_id for n in await live_nodes(redis_client)] != ["a"]:
            assert time.monotonic() - lost < 0.6 + 0.3, "b outlived its TTL"
            await asyncio.sleep(0.02)
        assert await redis_client.smembers("classroom:nodes") == {b"a"}  # type: ignore[misc]
    finally:
        await a.stop()
        await b.stop()
    assert await live_nodes(redis_client) == []  # a stop leaves at once


async def test_a_redis_that_restarts_empty_has_the_registry_back_from_the_heartbeats(
    redis_server: RedisProcess,
) -> None:
    client = Redis.from_url(redis_server.url)
    a = NodeRegistry(client, settings(redis_server.url, "a", ttl=0.9), lambda: node("a"))
    await a.start()
    try:
        redis_server.stop()
        await asyncio.sleep(0.5)
        assert a.error is not None and a.snapshot()["redis"].startswith("unreachable")
        redis_server.start()  # the same port, nothing in it
        deadline = time.monotonic() + 5
        while [n.node_id for n in await live_nodes(client)] != ["a"]:
            assert time.monotonic() < deadline, "the registry did not come back"
            await asyncio.sleep(0.05)
        while a.error is not None:
            await asyncio.sleep(0.05)
        assert a.snapshot()["redis"] == "ok"
    finally:
        await a.stop()
        await client.aclose()


def _chosen(nodes: list[NodeInfo]) -> str | None:
    found = choose_node(nodes)
    return None if found is None else found.node_id


def test_placement_takes_the_least_loaded_node_under_the_limit_and_never_a_draining_one() -> None:
    nodes = [node("a", cpu=1.0), node("b", cpu=0.4, participants=30), node("c", cpu=0.4)]
    assert _chosen(nodes) == "c"  # b and c tie on load: fewer participants
    assert _chosen(nodes[:1]) == "a"  # over the limit, but the only one
    hot = [node("a", cpu=1.9), node("b", cpu=1.6)]
    assert _chosen(hot) == "b"  # all over the limit: the least loaded anyway
    assert _chosen([node("a", draining=True), node("b", cpu=1.9)]) == "b"
    assert _chosen([node("a", draining=True)]) is None
    assert _chosen([]) is None


async def test_two_nodes_claiming_one_class_at_once_end_with_one_placement(
    redis_server: RedisProcess, redis_client: Redis
) -> None:
    def describe(name: str) -> Callable[[], NodeInfo]:
        return lambda: node(name)

    registries = [
        NodeRegistry(redis_client, settings(redis_server.url, name, ttl=3.0), describe(name))
        for name in ("a", "b")
    ]
    for registry in registries:
        await registry.start()
    try:

        def prefer(name: str) -> Chooser:
            def choose(nodes: Sequence[NodeInfo]) -> NodeInfo | None:
                return next(n for n in nodes if n.node_id == name)

            return choose

        for attempt in range(20):  # both decide from the same empty map, each for itself
            class_id = f"class-{attempt}"
            first, second = await asyncio.gather(
                claim_room(redis_client, class_id, "s1", prefer("a")),
                claim_room(redis_client, class_id, "s1", prefer("b")),
            )
            assert first == second == await placement_of(redis_client, class_id)
        # The same session asks again: it stays where it is, whatever the chooser says.
        again = await claim_room(redis_client, "class-0", "s1", prefer("b"))
        assert again == first if first.node_id == "b" else again.node_id == first.node_id
        # A new session of the class is placed afresh; the old one's release is a no-op.
        fresh = await claim_room(redis_client, "class-0", "s2", prefer("b"))
        assert (fresh.node_id, fresh.session_id) == ("b", "s2")
        assert not await release_room(redis_client, "class-0", again)
        assert await release_room(redis_client, "class-0", fresh)
        assert await placement_of(redis_client, "class-0") is None
    finally:
        for registry in registries:
            await registry.stop()


async def test_a_room_on_a_node_that_is_gone_is_placed_again(
    redis_server: RedisProcess, redis_client: Redis
) -> None:
    a = NodeRegistry(redis_client, settings(redis_server.url, "a"), lambda: node("a"))
    b = NodeRegistry(redis_client, settings(redis_server.url, "b"), lambda: node("b", cpu=1.0))
    await a.start()
    await b.start()
    try:
        placed = await claim_room(redis_client, "c", "s", choose_node)
        assert placed.node_id == "a"
        assert a.heartbeats is not None
        a.heartbeats.cancel()  # a dies
        await asyncio.sleep(0.9)
        moved = await claim_room(redis_client, "c", "s", choose_node)
        assert (moved.node_id, moved.session_id) == ("b", "s")
        await b.stop()
        with pytest.raises(NoNodeAvailable):
            await claim_room(redis_client, "d", "s", choose_node)
    finally:
        await a.stop()
        await b.stop()


async def test_classes_started_together_spread_over_idle_nodes_and_a_release_frees_a_slot(
    redis_server: RedisProcess, redis_client: Redis
) -> None:
    # Idle noise (0.2 vs 0.21 cores) is within one load step: it does not decide.
    cpus = {"a": 0.21, "b": 0.2, "c": 0.22}

    def describe(name: str) -> Callable[[], NodeInfo]:
        return lambda: node(name, cpus[name])

    registries = [
        NodeRegistry(redis_client, settings(redis_server.url, n, ttl=3.0), describe(n))
        for n in cpus
    ]
    for registry in registries:
        await registry.start()
    try:
        placements = [await claim_room(redis_client, f"c{i}", "s", choose_node) for i in range(6)]
        spread = sorted(p.node_id for p in placements)
        assert spread == ["a", "a", "b", "b", "c", "c"]  # no room opened yet on any of them
        assert await release_room(redis_client, "c0", placements[0])
        again = await claim_room(redis_client, "c6", "s", choose_node)
        assert again.node_id == placements[0].node_id  # the node with a free slot
    finally:
        for registry in registries:
            await registry.stop()

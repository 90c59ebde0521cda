"""The message bus between nodes on a real redis-server: an inbox keeps the order of what
one node sends, a broadcast reaches every node, a request gets its answer (or the error,
or NoAnswer for a node that is not there), and a Redis restart is survived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.cluster.bus import ClusterBus, Message, NoAnswer
from tests.redis_process import RedisProcess


@pytest.fixture
async def buses(redis_server: RedisProcess) -> AsyncIterator[Callable[[str], Any]]:
    made: list[tuple[ClusterBus, Redis]] = []

    async def make(node_id: str) -> ClusterBus:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        bus = ClusterBus(client, node_id)
        await bus.start()
        made.append((bus, client))
        return bus

    yield make
    for bus, client in made:
        await bus.stop()
        await client.aclose()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_an_inbox_keeps_the_order_and_a_broadcast_reaches_every_node(
    buses: Callable[[str], Any],
) -> None:
    a, b, c = [await buses(name) for name in ("a", "b", "c")]
    heard: dict[str, list[Message]] = {"a": [], "b": [], "c": []}
    for name, bus in (("a", a), ("b", b), ("c", c)):
        bus.on("signal", lambda m, name=name: heard[name].append(m))
        bus.on("news", lambda m, name=name: heard[name].append(m))
    for number in range(200):
        assert await a.send("b", {"t": "signal", "n": number}) == 1
    await until(lambda: len(heard["b"]) == 200)
    assert [m["n"] for m in heard["b"]] == list(range(200))
    assert heard["a"] == heard["c"] == []  # an inbox is one node's
    await c.broadcast({"t": "news", "what": "session ended"})
    await until(lambda: all(len(heard[n]) >= 1 for n in ("a", "c")) and len(heard["b"]) == 201)
    assert heard["a"] == heard["c"] == [{"t": "news", "what": "session ended"}]


async def test_a_request_gets_its_answer_its_error_or_no_answer(
    buses: Callable[[str], Any],
) -> None:
    a, b = await buses("a"), await buses("b")

    async def rooms(message: Message) -> Any:
        if message.get("classId") == "broken":
            raise ValueError("no such class here")
        await asyncio.sleep(0.05)  # slow answers do not hold up the bus
        return {"rooms": 3, "classId": message["classId"]}

    b.answer("rooms", rooms)
    answers = await asyncio.gather(
        *(a.ask("b", "rooms", {"classId": f"c{i}"}, timeout=5) for i in range(20))
    )
    assert answers == [{"rooms": 3, "classId": f"c{i}"} for i in range(20)]
    with pytest.raises(RuntimeError, match="no such class here"):
        await a.ask("b", "rooms", {"classId": "broken"}, timeout=5)
    with pytest.raises(RuntimeError, match="answers no 'drain'"):
        await a.ask("b", "drain", {}, timeout=5)
    with pytest.raises(NoAnswer, match="not on the bus"):
        await a.ask("gone", "rooms", {}, timeout=1)


async def test_the_bus_survives_a_redis_restart(
    redis_server: RedisProcess, buses: Callable[[str], Any]
) -> None:
    a, b = await buses("a"), await buses("b")
    heard: list[Message] = []
    b.on("signal", heard.append)
    redis_server.stop()
    await asyncio.sleep(0.3)
    redis_server.start()
    async with asyncio.timeout(10):
        while not heard:  # resubscribed: a message sent now arrives
            with contextlib.suppress(RedisError, OSError):  # Redis coming back
                await a.send("b", {"t": "signal"})
            await asyncio.sleep(0.2)
    assert heard[0] == {"t": "signal"}

"""Placement with real processes: three ``python -m api`` nodes on one redis-server and
nx-27017. Classes started through any node spread over the nodes, and two starts of one
class on two nodes at once end with one session and one placement."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from api.cluster.room_map import room_key
from api.errors import SESSION_ALREADY_ACTIVE
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ApiFailure, ClassroomApi
from tests.redis_process import RedisProcess

from .nodes import node, seen_by, until

NAMES = ("a", "b", "c")


async def test_classes_spread_over_the_nodes_and_simultaneous_starts_give_one_room(
    tmp_path: Path, redis_server: RedisProcess, redis_client: Redis, mongo: Nx27017Server
) -> None:
    servers = [node(tmp_path, name, redis_server, mongo) for name in NAMES]
    try:
        for server in servers:
            await server.start()

        async def all_seen() -> bool:
            return all([await seen_by(s) == list(NAMES) for s in servers])

        await until(all_seen, 5, "every node sees all three")
        async with aiohttp.ClientSession() as http:
            apis = [ClassroomApi(s.base_url, http) for s in servers]
            teacher = await apis[0].register("T", "t@school.test", "teacher")
            classes = [(await apis[0].create_class(teacher, f"C{i}"))["_id"] for i in range(7)]
            await asyncio.sleep(1.5)  # the signups' CPU out of every heartbeat

            for i, class_id in enumerate(classes[:6]):  # through each node in turn
                await apis[i % 3].start_session(teacher, class_id)
            placed = [json.loads(await redis_client.get(room_key(c)) or "{}") for c in classes[:6]]
            spread = Counter(p["nodeId"] for p in placed)
            print(f"6 classes started over 3 idle nodes were placed {dict(sorted(spread.items()))}")
            assert set(spread) == set(NAMES) and max(spread.values()) <= 3

            # Two teachers' clicks at once, on two nodes: one session, one room.
            last = classes[6]
            results = await asyncio.gather(
                apis[1].start_session(teacher, last),
                apis[2].start_session(teacher, last),
                return_exceptions=True,
            )
            started = [r for r in results if isinstance(r, dict)]
            refused = [r for r in results if isinstance(r, ApiFailure)]
            assert len(started) == 1 and len(refused) == 1, results
            assert (refused[0].status, refused[0].error) == (409, SESSION_ALREADY_ACTIVE)
            placement = json.loads(await redis_client.get(room_key(last)) or "{}")
            assert placement["sessionId"] == started[0]["sessionId"]
    finally:
        for server in servers:
            server.stop()

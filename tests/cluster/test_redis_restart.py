"""Redis restarted empty mid-class: two ``python -m api`` nodes, a room on one, a student's
socket relayed from the other. While Redis is down the room goes on (media) and a relayed
event is refused with a clear ``ERROR``; once it is back the registry and the room's
placement are back from the heartbeats, the relay works again, and a student who joins
again lands in the same room."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from api.cluster.room_map import room_key
from api.relay.signalling import CLUSTER_UNAVAILABLE, ROOM_NODE_UNREACHABLE
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ApiFailure, ClassroomApi
from scripts.synthpeer.peer import SyntheticPeer
from tests.redis_process import RedisProcess

from .media import ICE, PairMedia, peer
from .nodes import TTL, live_class, node, running, seen_by, until


async def test_a_redis_restart_keeps_the_room_and_the_cluster_recovers(
    tmp_path: Path, redis_server: RedisProcess, redis_client: Redis, mongo: Nx27017Server
) -> None:
    servers = {name: node(tmp_path, name, redis_server, mongo, ice) for name, ice in ICE.items()}
    peers: list[SyntheticPeer] = []

    async def both() -> bool:
        return all([await seen_by(s) == ["a", "b"] for s in servers.values()])

    try:
        async with running(servers), aiohttp.ClientSession() as http:
            apis = {name: ClassroomApi(s.base_url, http) for name, s in servers.items()}
            live = await live_class(apis["a"], "Geography")
            teacher, student, class_id = live.teacher, live.student, live.class_id
            placement = json.loads(await redis_client.get(room_key(class_id)) or "{}")
            home = placement["nodeId"]
            edge = next(name for name in servers if name != home)
            teaching = peer(apis[home], teacher, class_id)
            learning = peer(apis[edge], student, class_id)  # relayed
            peers += [teaching, learning]
            for p in peers:
                await p.join()
                await p.wait_connected()
            pair = PairMedia(teaching, learning)
            await until(pair.flowing, 20, "media both ways")

            redis_server.stop()
            before = pair.frames()
            await until(lambda: pair.flowing(before), 10, "media while Redis is down")
            try:
                await learning.chat("while Redis is down", timeout=5)
                raise AssertionError("a relayed event went through without Redis")
            except ApiFailure as refused:
                assert (refused.event, refused.error) == ("CHAT", CLUSTER_UNAVAILABLE)

            redis_server.start()  # empty: no registry, no room map
            await until(both, TTL + 5, "the registry back from the heartbeats")
            await until(
                lambda: _placed(redis_client, class_id, placement), TTL + 5, "the placement back"
            )
            said = await _chat_once_relayed(learning, "after the restart")
            assert teaching.socket is not None
            heard = await teaching.socket.next(
                "CHAT", timeout=5, where=lambda d: d.get("messageId") == said["messageId"]
            )
            assert heard["text"] == "after the restart"

            # A student joining again goes to the same room, not a second one.
            await learning.close()
            back = peer(apis[edge], student, class_id)
            peers.append(back)
            joined = await back.join()
            assert [p["userId"] for p in joined["participants"]] == [teacher.id]
            await back.wait_connected()
            assert json.loads(await redis_client.get(room_key(class_id)) or "{}") == placement
            assert placement["sessionId"] == live.session_id
    finally:
        for p in peers:
            await p.close()


async def _placed(redis: Redis, class_id: str, placement: dict[str, str]) -> bool:
    raw = await redis.get(room_key(class_id))
    await asyncio.sleep(0)
    return raw is not None and json.loads(raw) == placement


async def _chat_once_relayed(student: SyntheticPeer, text: str) -> dict[str, Any]:
    """The chat, once the room's node is back on the bus (it resubscribes within
    ``api.cluster.bus.RECONNECT_SECONDS`` of Redis answering again)."""
    async with asyncio.timeout(5):
        while True:
            try:
                return await student.chat(text, timeout=5)
            except ApiFailure as refused:
                assert refused.error == ROOM_NODE_UNREACHABLE, refused
                await asyncio.sleep(0.1)

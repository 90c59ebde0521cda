"""``SIGTERM`` drains a cluster node: two ``python -m api`` nodes behind one URL, one
redis-server, nx-27017. The draining node says so at once (``/ready`` 503, its heartbeat),
takes no new room, lets its live room go on for ``NODE_DRAIN_SECONDS``, then moves it: the
room is placed on the other node (same session), every participant joins again there
through the same URL, media flows, the chat history is there, the attendance record shows
one continuous presence, and the drained node exits cleanly."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from api.cluster.room_map import room_key
from api.errors import DRAINING
from scripts.support.balancer import TcpBalancer
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ClassroomApi
from scripts.synthpeer.peer import SyntheticPeer
from scripts.synthpeer.rejoin import StayInRoom
from tests.redis_process import RedisProcess

from .media import ICE, PairMedia, peer
from .nodes import health, live_class, node, running, until

DRAIN = 2.0


async def test_sigterm_drains_then_moves_the_room_and_loses_nothing(
    tmp_path: Path, redis_server: RedisProcess, redis_client: Redis, mongo: Nx27017Server
) -> None:
    servers = {
        name: node(tmp_path, name, redis_server, mongo, ice, drain_seconds=DRAIN)
        for name, ice in ICE.items()
    }
    balancer = TcpBalancer([])
    peers: list[SyntheticPeer] = []
    keepers: list[StayInRoom] = []
    try:
        async with running(servers), aiohttp.ClientSession() as http:
            balancer = TcpBalancer([("127.0.0.1", s.port) for s in servers.values()])
            await balancer.start()
            api = ClassroomApi(balancer.base_url, http)
            live = await live_class(api, "History")
            teacher, student, class_id = live.teacher, live.student, live.class_id
            later_id = (await api.create_class(teacher, "Latin"))["_id"]
            home = json.loads(await redis_client.get(room_key(class_id)) or "{}")["nodeId"]
            other = next(name for name in servers if name != home)
            direct = ClassroomApi(servers[home].base_url, http)

            teaching, learning = peer(api, teacher, class_id), peer(api, student, class_id)
            peers += [teaching, learning]
            for p in peers:
                await p.join()
                await p.wait_connected()
            said = await learning.chat("before the drain")
            keepers += [StayInRoom(p) for p in peers]
            for keeper in keepers:
                keeper.start()

            process = servers[home].process
            assert process is not None
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            async def not_ready() -> bool:
                status, answer = await direct.request("GET", "/ready")
                return (status, answer) == (503, {"success": False, "error": DRAINING})

            await until(not_ready, 2, "the draining node is not ready")
            assert (await health(servers[home]))["node"]["draining"] is True
            # No new room goes to it, while its live room goes on there.
            await api.start_session(teacher, later_id)
            later = json.loads(await redis_client.get(room_key(later_id)) or "{}")
            assert later["nodeId"] == other
            assert not any(keeper.rejoins for keeper in keepers)
            assert (await health(servers[home]))["node"]["rooms"] == 1

            async def everyone_back() -> bool:
                return all(keeper.rejoins for keeper in keepers)

            await until(everyone_back, DRAIN + 20, "every participant moved")
            moved_after = max(k.rejoins[0].back_at for k in keepers) - signalled
            assert min(k.rejoins[0].lost_at for k in keepers) - signalled >= DRAIN - 0.2
            moved = json.loads(await redis_client.get(room_key(class_id)) or "{}")
            assert moved == {"nodeId": other, "sessionId": live.session_id}
            assert process.wait(15) == 0

            await until(PairMedia(teaching, learning).flowing, 20, "media both ways, moved")
            assert [m["messageId"] for m in teaching.room["chat"]] == [said["messageId"]]
            print(
                f"SIGTERM with NODE_DRAIN_SECONDS={DRAIN:g}: every participant back in media "
                f"on {other} {moved_after:.2f} s after the signal "
                f"({moved_after - DRAIN:.2f} s after the drain time)"
            )
            for keeper in keepers:
                await keeper.stop()
            await api.end_session(teacher, class_id)
            path = f"/class/{class_id}/sessions/{live.session_id}"
            (row,) = (await api.call("GET", path, token=teacher.token))["students"]
            assert len(row["intervals"]) == 1, row
    finally:
        for keeper in keepers:
            await keeper.stop()
        for p in peers:
            await p.close()
        await balancer.stop()

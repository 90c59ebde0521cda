"""A room's node killed with ``kill -9`` mid-class: two ``python -m api`` nodes behind one
URL (a TCP balancer on loopback), one redis-server, nx-27017. The sockets on the dead node
drop, the other node closes the sockets it relayed there once the dead node's heartbeat
has lapsed, the synthetic peers join again through the same URL, the class is placed
again on the live node (same session), media flows again both ways, and the attendance
record shows one continuous presence for the student (the gap is within the grace)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from api.cluster.room_map import room_key
from scripts.support.balancer import TcpBalancer
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ClassroomApi
from scripts.synthpeer.peer import SyntheticPeer
from scripts.synthpeer.rejoin import StayInRoom
from tests.redis_process import RedisProcess

from .media import ICE, PairMedia, peer
from .nodes import TTL, live_class, node, running, until


async def test_a_killed_room_node_is_replaced_and_everyone_rejoins_with_presence_kept(
    tmp_path: Path, redis_server: RedisProcess, redis_client: Redis, mongo: Nx27017Server
) -> None:
    servers = {name: node(tmp_path, name, redis_server, mongo, ice) for name, ice in ICE.items()}
    balancer = TcpBalancer([])
    peers: list[SyntheticPeer] = []
    keepers: list[StayInRoom] = []
    try:
        async with running(servers), aiohttp.ClientSession() as http:
            balancer = TcpBalancer([("127.0.0.1", s.port) for s in servers.values()])
            await balancer.start()
            api = ClassroomApi(balancer.base_url, http)  # the one URL clients know
            live = await live_class(api, "Chemistry")
            teacher, student, class_id = live.teacher, live.student, live.class_id
            home = json.loads(await redis_client.get(room_key(class_id)) or "{}")["nodeId"]
            other = next(name for name in servers if name != home)

            teaching, learning = peer(api, teacher, class_id), peer(api, student, class_id)
            peers += [teaching, learning]
            for p in peers:
                await p.join()
                await p.wait_connected()
            pair = PairMedia(teaching, learning)
            await until(pair.flowing, 20, "media both ways")
            keepers += [StayInRoom(p) for p in peers]
            for keeper in keepers:
                keeper.start()

            process = servers[home].process
            assert process is not None
            os.kill(process.pid, 9)
            killed_at = time.monotonic()
            process.wait(10)

            async def everyone_back() -> bool:
                return all(keeper.rejoins for keeper in keepers)

            await until(everyone_back, TTL + 20, "every participant back in media")
            back = max(keeper.rejoins[0].back_at for keeper in keepers) - killed_at
            moved = json.loads(await redis_client.get(room_key(class_id)) or "{}")
            assert moved == {"nodeId": other, "sessionId": live.session_id}
            await until(pair.flowing, 20, "media both ways again")  # counted anew
            print(
                f"room node killed: every participant back in media after {back:.2f} s "
                f"(TTL {TTL:g} s; attempts {[k.rejoins[0].attempts for k in keepers]}, "
                f"failures retried {[k.failures for k in keepers]})"
            )
            for keeper in keepers:
                await keeper.stop()

            await api.end_session(teacher, class_id)
            path = f"/class/{class_id}/sessions/{live.session_id}"
            (row,) = (await api.call("GET", path, token=teacher.token))["students"]
            assert len(row["intervals"]) == 1, row  # the move is within the grace
            assert row["status"] in ("present", "late", "absent")
    finally:
        for keeper in keepers:
            await keeper.stop()
        for p in peers:
            await p.close()
        await balancer.stop()

"""A class socket on one node, its room on another: ``POST /attendance/start`` places the
room (recorded in Redis and on the session), a student whose socket is on the other node
joins it through the relay, and media flows both ways straight to the room's node (aiortc
peers decode each other's frames); the student's leave reaches the room, and ending the
session on the edge closes the room's presence and the room itself. Real processes: two
``python -m api`` nodes, each gathering ICE on its own loopback address, one redis-server,
the Mongo backend on nx-27017."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import MongoClient
from redis.asyncio import Redis

from api.cluster.room_map import room_key
from api.recordings.service import RECORDING_ACTIVE
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ClassroomApi
from scripts.synthpeer.peer import SyntheticPeer
from tests.redis_process import RedisProcess

from .media import ICE, SAMPLED, frames_from, peer
from .nodes import health, live_class, node, running, until


def remote_addresses(viewer: SyntheticPeer) -> set[str]:
    """The addresses of the server's candidates in the subscribe offer the peer took."""
    assert viewer.media is not None and viewer.media.subscribe_pc is not None
    description = viewer.media.subscribe_pc.remoteDescription
    assert description is not None
    return {
        line.split()[4] for line in description.sdp.splitlines() if line.startswith("a=candidate:")
    }


async def test_a_socket_on_one_node_joins_a_room_on_another_and_media_flows_both_ways(
    tmp_path: Path, redis_server: RedisProcess, redis_client: Redis, mongo: Nx27017Server
) -> None:
    servers = {name: node(tmp_path, name, redis_server, mongo, ice) for name, ice in ICE.items()}
    peers: list[SyntheticPeer] = []
    try:
        async with running(servers), aiohttp.ClientSession() as http:
            apis = {name: ClassroomApi(s.base_url, http) for name, s in servers.items()}
            live = await live_class(apis["b"], "Physics")
            teacher, student, class_id = live.teacher, live.student, live.class_id

            # Placed at the start, in Redis and on the session document.
            raw = await redis_client.get(room_key(class_id))
            assert raw is not None
            placed = json.loads(raw)
            assert placed["sessionId"] == live.session_id
            home = placed["nodeId"]
            edge = next(name for name in servers if name != home)
            client: MongoClient[dict[str, Any]]
            with MongoClient(mongo.uri) as client:
                stored = client["attendance"]["sessions"].find_one({"classId": class_id})
            assert stored is not None and stored["nodeId"] == home

            # The teacher on the room's node, the student on the other one.
            teaching = peer(apis[home], teacher, class_id)
            learning = peer(apis[edge], student, class_id)
            peers += [teaching, learning]
            await teaching.join()
            relayed_started = time.monotonic()
            joined = await learning.join()
            relayed_join = time.monotonic() - relayed_started
            assert [p["userId"] for p in joined["participants"]] == [teacher.id]

            async def both_ways() -> bool:
                seen = frames_from(teaching, student.id), frames_from(learning, teacher.id)
                return all(frames > 30 and decoded >= SAMPLED for frames, decoded in seen)

            await until(both_ways, 20, "frames decoded both ways")
            # The student's own status, pushed by the room's node, reaches its socket on
            # the edge.
            assert learning.socket is not None
            pushed = await learning.socket.next(
                "MY_ATTENDANCE_UPDATED", timeout=5, where=lambda d: d.get("status") == "present"
            )
            assert (pushed["classId"], pushed["final"]) == (class_id, False)
            # A teacher's page on the edge that has not joined asks for the roster: it is
            # the room's, with the student in it (answered by the room's node).
            watching = await apis[edge].open_socket(teacher.token, class_id)
            try:
                roster = await watching.request("ROSTER", {}, "ROSTER", timeout=5)
            finally:
                await watching.close()
            (row,) = roster["students"]
            assert (row["userId"], row["inRoom"], row["connected"]) == (student.id, True, True)
            # REST recording start and stop on the edge: done by the room's node.
            recordings = f"/class/{class_id}/recordings"
            status, started_rec = await apis[edge].request(
                "POST", recordings + "/start", token=teacher.token
            )
            assert status == 201, started_rec
            assert teaching.socket is not None
            announced = await teaching.socket.next("RECORDING", timeout=5)
            assert announced["recordingId"] == started_rec["data"]["recordingId"]
            status, again = await apis[edge].request(
                "POST", recordings + "/start", token=teacher.token
            )
            assert (status, again["error"]) == (409, RECORDING_ACTIVE)  # the room node's answer
            status, stopped = await apis[edge].request(
                "POST", recordings + "/stop", token=teacher.token
            )
            assert status == 200 and stopped["data"]["stoppedAt"] is not None, stopped
            # ICE went straight to the room's node: its address, never the edge's.
            assert remote_addresses(learning) == {ICE[home]}
            room_node, edge_node = [await health(servers[n]) for n in (home, edge)]
            assert (room_node["node"]["rooms"], room_node["node"]["participants"]) == (1, 2)
            assert (edge_node["node"]["rooms"], edge_node["node"]["participants"]) == (0, 0)
            print(f"relayed JOIN_ROOM -> ROOM_JOINED with media: {relayed_join * 1000:.0f} ms")

            # Leaving through the relay reaches the room.
            assert teaching.socket is not None and learning.socket is not None
            in_room = time.monotonic() - relayed_started
            await learning.leave()
            left = await teaching.socket.next("PEER_LEFT", timeout=5)
            assert left["userId"] == student.id

            # The session ended on the edge: the room's node writes its last presence
            # before the statuses are final, and closes the room.
            summary = await apis[edge].end_session(teacher, class_id)
            assert summary["total"] == 1
            done = await teaching.socket.next("DONE", timeout=5)
            assert done == summary
            path = f"/class/{class_id}/sessions/{live.session_id}"
            record = await apis[edge].call("GET", path, token=teacher.token)
            (row,) = record["students"]
            assert in_room - 3 < row["presenceSeconds"] <= in_room + 0.5, (row, in_room)
            assert row["cameraSeconds"] > 0

            async def room_closed() -> bool:
                rooms: int = (await health(servers[home]))["node"]["rooms"]
                return rooms == 0

            await until(room_closed, 5, "the room closed on its node")
            assert await redis_client.get(room_key(class_id)) is None
    finally:
        for p in peers:
            await p.close()

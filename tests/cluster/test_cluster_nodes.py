"""Cluster mode with real processes: ``python -m api`` nodes on one redis-server and the
Mongo backend (nx-27017) see each other in ``/health`` and ``/metrics``; a node killed with
``kill -9`` drops out of the other's view within its TTL; a stopped node leaves at once; a
class broadcast made on one node reaches the class's sockets on another; cluster mode
without a shared store or a shared token key refuses to start, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from api.auth.keys import KEY_FILE, load_or_create_signing_key
from api.cluster.settings import NEEDS_SHARED_KEY, NEEDS_SHARED_STORE
from api.config import ConfigError, load_settings
from api.ws.attendance_events import NOT_YET_UPDATED
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ClassroomApi
from tests.redis_process import RedisProcess
from tests.server_process import REPO, ServerProcess

from .nodes import TTL, health, node, seen_by, until


async def test_two_nodes_see_each_other_and_a_killed_one_is_gone_within_its_ttl(
    tmp_path: Path, redis_server: RedisProcess, mongo: Nx27017Server
) -> None:
    a, b, c = (node(tmp_path, name, redis_server, mongo) for name in ("a", "b", "c"))
    try:
        for server in (a, b):
            await server.start()

        async def both() -> bool:
            return await seen_by(a) == await seen_by(b) == ["a", "b"]

        await until(both, 5, "each node sees both")
        mine = await health(a)
        assert mine["node"]["nodeId"] == "a" and mine["node"]["iceAddresses"] == ["127.0.0.1"]
        assert mine["node"]["httpUrl"] == a.base_url and mine["node"]["cores"] >= 1
        assert mine["cluster"]["redis"] == "ok" and mine["store"] == "mongodb"
        async with (
            aiohttp.ClientSession() as session,
            session.get(a.base_url + "/metrics") as response,
        ):
            metrics = await response.text()
        assert "classroom_cluster_nodes 2.0" in metrics
        assert "classroom_cluster_redis_up 1.0" in metrics

        assert b.process is not None
        os.kill(b.process.pid, 9)
        b.process.wait(10)

        async def a_alone() -> bool:
            return await seen_by(a) == ["a"]

        gone = await until(a_alone, TTL + 2 * TTL / 3 + 1, "the killed node dropped out")
        print(f"a node killed with -9 dropped out of the registry after {gone:.2f} s")

        await c.start()
        await until(lambda: _seen(a, ["a", "c"]), 5, "a new node joined")
        c.stop()  # SIGTERM: it leaves at once, not after its TTL
        left = await until(lambda: _seen(a, ["a"]), TTL, "a stopped node left")
        print(f"a stopped node left the registry after {left:.2f} s")
    finally:
        for server in (a, b, c):
            server.stop()


async def _seen(server: ServerProcess, nodes: list[str]) -> bool:
    return await seen_by(server) == nodes


async def test_a_class_broadcast_on_one_node_reaches_the_class_sockets_on_another(
    tmp_path: Path, redis_server: RedisProcess, mongo: Nx27017Server
) -> None:
    a, b = (node(tmp_path, name, redis_server, mongo) for name in ("a", "b"))
    try:
        for server in (a, b):
            await server.start()
        async with aiohttp.ClientSession() as session:
            on_a, on_b = ClassroomApi(a.base_url, session), ClassroomApi(b.base_url, session)
            teacher = await on_a.register("T", "t@school.test", "teacher")
            student = await on_b.register("S", "s@school.test", "student")  # one store
            cls = await on_a.create_class(teacher, "Biology")
            await on_a.enrol(teacher, cls["_id"], student.id)
            await on_a.start_session(teacher, cls["_id"])
            # The student's socket is on b, with a token a did not issue: one key.
            socket = await on_b.open_socket(student.token, cls["_id"])
            teacher_socket = await on_a.open_socket(teacher.token, cls["_id"])
            try:
                # Read on b before the mark a makes: b must not answer from a stale copy.
                answer = await socket.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE", timeout=5)
                assert answer == {"status": NOT_YET_UPDATED}
                mark = {"studentId": student.id, "status": "absent"}
                await teacher_socket.send("ATTENDANCE_MARKED", mark)
                assert await teacher_socket.next("ATTENDANCE_MARKED", timeout=5) == mark
                marked = await socket.next("ATTENDANCE_MARKED", timeout=5)
                assert marked == mark
                answer = await socket.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE", timeout=5)
                assert answer == {"status": "absent"}
                # A push to a role: a student signing up on b, the teacher's socket on a.
                newcomer = await on_b.register("N", "n@school.test", "student")
                signed_up = await teacher_socket.next("STUDENT_SIGNED_UP", timeout=5)
                assert signed_up["student"]["_id"] == newcomer.id
                ended = await on_a.end_session(teacher, cls["_id"])
                done = await socket.next("DONE", timeout=5)
                assert done == ended and done["message"] == "Attendance persisted"
            finally:
                await socket.close()
                await teacher_socket.close()
    finally:
        for server in (a, b):
            server.stop()


def test_cluster_mode_needs_a_shared_token_key(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "MONGODB_URI": "mongodb://127.0.0.1:1"}
    with pytest.raises(ConfigError, match="needs JWT_SIGNING_KEY_FILE"):
        load_settings(env)
    assert NEEDS_SHARED_KEY.startswith("REDIS_URL (cluster mode) needs JWT_SIGNING_KEY_FILE")
    load_or_create_signing_key(tmp_path)
    keyed = load_settings({**env, "JWT_SIGNING_KEY_FILE": str(tmp_path / KEY_FILE)})
    assert keyed.cluster is not None and keyed.cluster.redis_url == env["REDIS_URL"]
    with pytest.raises(ConfigError, match="is not a file"):
        load_settings({**env, "JWT_SIGNING_KEY_FILE": str(tmp_path / "missing.pem")})


def test_cluster_mode_on_the_embedded_sqlite_store_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    done = subprocess.run(
        [sys.executable, "-m", "api"],
        cwd=REPO,
        env={**env, "REDIS_URL": "redis://127.0.0.1:1/0", "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith(NEEDS_SHARED_STORE), done.stderr

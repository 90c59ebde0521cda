"""The whole flow against ``python -m api`` as a real process, and restarts that lose nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import ClassroomApi
from tests.server_process import ServerProcess


@pytest.fixture(params=["sqlite", "nx27017", "mongodb"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Server environment for each store: embedded SQLite, MongoDB's wire protocol served by
    nx-27017, or a real MongoDB when ``MONGODB_URI`` is set."""
    env = {"DATA_DIR": str(tmp_path / "data"), "MONGODB_DB": f"api_{uuid.uuid4().hex[:12]}"}
    if request.param == "nx27017":
        server: Nx27017Server = request.getfixturevalue("nx27017_server")
        env["MONGODB_URI"] = server.uri
    elif request.param == "mongodb":
        uri = os.environ.get("MONGODB_URI")
        if not uri:
            pytest.skip("MONGODB_URI not set: no real MongoDB to test against")
        env["MONGODB_URI"] = uri
    yield env


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    return tmp_path / "server.log"


async def test_full_flow_then_restarts_lose_nothing_acknowledged(
    store_env: dict[str, str], server_log: Path
) -> None:
    server = ServerProcess(store_env, server_log)
    await server.start()
    try:
        async with ClassroomApi(server.base_url) as api:
            teacher = await api.register("Tess", "tess@school.test", "teacher")
            ann = await api.register("Ann", "ann@school.test", "student")
            bob = await api.register("Bob", "bob@school.test", "student")
            cls = await api.create_class(teacher, "Chemistry")
            await api.enrol(teacher, cls["_id"], ann.id)
            await api.enrol(teacher, cls["_id"], bob.id)
            await api.start_session(teacher, cls["_id"])

            teacher_ws = await api.open_socket(teacher.token)
            ann_ws = await api.open_socket(ann.token, cls["_id"])
            await teacher_ws.send("ATTENDANCE_MARKED", {"studentId": ann.id, "status": "present"})
            assert await ann_ws.next("ATTENDANCE_MARKED") == {
                "studentId": ann.id,
                "status": "present",
            }
            assert await ann_ws.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {
                "status": "present"
            }
            done = await teacher_ws.request("DONE", {}, "DONE")
            assert done == {
                "message": "Attendance persisted",
                "present": 1,
                "absent": 1,
                "total": 2,
            }
            assert await ann_ws.next("DONE") == done
            await teacher_ws.close()
            await ann_ws.close()
            # A second session, left running when the server is killed.
            running = await api.start_session(teacher, cls["_id"])

        server.kill()
        server = ServerProcess(store_env, server_log)
        await server.start()
        async with ClassroomApi(server.base_url) as api:
            # Old tokens still verify: the signing key lives in the data directory.
            me = await api.call("GET", "/auth/me", token=ann.token)
            assert me["email"] == "ann@school.test"
            token = await api.login("tess@school.test", "secret-pass")
            kept = await api.call("GET", f"/class/{cls['_id']}", token=token)
            assert kept["studentIds"] == [ann.id, bob.id]
            for student, status in ((ann, "present"), (bob, "absent")):
                mine = await api.call(
                    "GET", f"/class/{cls['_id']}/my-attendance", token=student.token
                )
                assert mine == {"classId": cls["_id"], "status": status}
            room = await api.call("GET", f"/class/{cls['_id']}/room", token=token)
            assert room["isActive"] is True and room["sessionId"] == running["sessionId"]
            ended = await api.end_session(teacher, cls["_id"])
            assert ended["absent"] == 2

        server.stop()
        server = ServerProcess(store_env, server_log)
        await server.start()
        async with ClassroomApi(server.base_url) as api:
            mine = await api.call("GET", f"/class/{cls['_id']}/my-attendance", token=ann.token)
            assert mine["status"] == "absent"  # the latest finished session
    finally:
        server.stop()


async def test_sigterm_stops_the_server_promptly_with_sockets_open(
    tmp_path: Path, server_log: Path
) -> None:
    server = ServerProcess({"DATA_DIR": str(tmp_path / "data")}, server_log)
    await server.start()
    async with ClassroomApi(server.base_url) as api:
        teacher = await api.register("Tess", "tess@school.test", "teacher")
        socket = await api.open_socket(teacher.token)
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(socket._reader, 10)
        assert socket.close_code == 1001
        code = await asyncio.to_thread(server.process.wait, 10)
        assert code == 0 and time.monotonic() - started < 10

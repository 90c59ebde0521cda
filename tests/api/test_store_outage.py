"""MongoDB stopped under a running server (nx-27017 over the wire, stopped by its PID):
REST answers 503 with one clear message within the driver's timeout, class WebSocket events
an ``ERROR`` with it, never a 500; when the store is back on the same address the server
answers again without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.config import Settings, load_settings
from api.store.outage import STORE_UNAVAILABLE
from scripts.support.nx27017 import (
    Nx27017Server,
    restart_nx27017,
    start_nx27017,
    stop_nx27017,
)

from .conftest import ServerFactory


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[list[Nx27017Server]]:
    """A store of this test's own, that it may stop and start (the last one is running)."""
    servers = [start_nx27017(tmp_path / "nx")]
    try:
        yield servers
    finally:
        stop_nx27017(servers[-1])


async def test_rest_and_events_answer_503_while_the_store_is_down_and_recover_after(
    start_server: ServerFactory, own_mongo: list[Nx27017Server], tmp_path: Path
) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        mongodb_uri=own_mongo[0].uri,
        mongodb_db="outage",
        mongodb_timeout_seconds=1.0,
    )
    server = await start_server(settings)
    room = await server.classroom(students=1)
    socket = await server.api.open_socket(room.students[0].token, room.class_id)
    await socket.send("MY_ATTENDANCE", {})  # a round trip: the socket is authenticated
    assert (await socket.next("ERROR"))["message"] == "No active attendance session"

    stop_nx27017(own_mongo[0])
    started = time.monotonic()
    status, answer = await server.api.request("GET", "/classes", token=room.teacher.token)
    assert (status, answer) == (503, {"success": False, "error": STORE_UNAVAILABLE})
    assert time.monotonic() - started < 5  # the store's timeout, not the driver's 30 s
    await socket.send("MY_ATTENDANCE", {})
    assert await socket.next("ERROR") == {"message": STORE_UNAVAILABLE, "event": "MY_ATTENDANCE"}
    late = await server.api.open_socket(room.teacher.token, room.class_id)
    assert await late.next("ERROR") == {"message": STORE_UNAVAILABLE, "event": None}
    async with asyncio.timeout(5):
        while not late.closed:  # the server closes it
            await asyncio.sleep(0.01)
    assert late.close_code == 1013  # try again later

    own_mongo.append(restart_nx27017(own_mongo[0]))
    classes = await server.api.call("GET", "/classes", token=room.teacher.token)
    assert [c["_id"] for c in classes] == [room.class_id]  # nothing was lost meanwhile
    await socket.send("MY_ATTENDANCE", {})
    assert (await socket.next("ERROR"))["message"] == "No active attendance session"
    await socket.close()


def test_the_store_timeout_is_a_setting() -> None:
    assert load_settings({}).mongodb_timeout_seconds == 5.0
    assert load_settings({"MONGODB_TIMEOUT_SECONDS": "2"}).mongodb_timeout_seconds == 2.0

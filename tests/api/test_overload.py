"""Overload shedding: while the event loop lags, new room joins are refused with a clear
``ERROR`` (nothing of the join happens) and ``/health`` says so; once it recovers, joins
work again. The lag is real: the in-process server shares this test's event loop, which
the test keeps busy with blocking sleeps."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from api import overload
from api.config import Settings, load_settings
from api.overload import OVERLOADED, LoadWatch, lag_limit_ms
from api.ws.connection import ClientSocket
from scripts.synthpeer.api_client import ApiFailure

from .conftest import RunningServer, ServerFactory


def test_the_median_lag_of_the_window_decides() -> None:
    watch = LoadWatch(limit=0.1, window=3.0)
    assert watch.lag == 0.0 and not watch.overloaded
    for at, lag in ((0.0, 0.5), (1.0, 0.0), (2.0, 0.5)):
        watch.record(at, lag)
    assert watch.lag == 0.5 and watch.overloaded  # one good sample in three is not enough
    for at in (3.5, 4.0, 4.5):  # the bad samples at 0 and 1 leave the window
        watch.record(at, 0.01)
    assert watch.lag == 0.01 and not watch.overloaded


def test_the_limit_is_a_setting() -> None:
    assert load_settings({}).overload_lag_ms is None
    assert lag_limit_ms(None) == overload.DEFAULT_LAG_LIMIT_MS
    assert load_settings({"OVERLOAD_LAG_MS": "0"}).overload_lag_ms == 0
    assert load_settings({"OVERLOAD_LAG_MS": "400"}).overload_lag_ms == 400


@pytest.fixture
async def sheddable(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(replace(settings, overload_lag_ms=60))


async def _health(server: RunningServer) -> dict[str, object]:
    data: dict[str, object] = await server.api.call("GET", "/health")
    return data


async def test_joins_are_refused_while_the_loop_lags_and_taken_again_after(
    sheddable: RunningServer,
) -> None:
    room = await sheddable.classroom(students=1)
    await sheddable.api.start_session(room.teacher, room.class_id)
    socket = await sheddable.api.open_socket(room.students[0].token, room.class_id)
    assert (await _health(sheddable))["status"] == "ok"

    busy = True

    async def hog() -> None:
        while busy:
            time.sleep(0.3)  # noqa: ASYNC251 (blocking the loop is the point: saturation)
            await asyncio.sleep(0.005)

    hogging = asyncio.create_task(hog())
    try:
        async with asyncio.timeout(10):
            while (health := await _health(sheddable))["status"] != "overloaded":
                await asyncio.sleep(0.05)
        assert isinstance(health["eventLoopLagMs"], float) and health["eventLoopLagMs"] > 60
        with pytest.raises(ApiFailure) as refused:
            await socket.request("JOIN_ROOM", {}, "ROOM_JOINED", timeout=20)
        assert (refused.value.event, refused.value.error) == ("JOIN_ROOM", OVERLOADED)
        [server_side] = [
            s for s in sheddable.services.hub.all() if s.user.id == room.students[0].id
        ]
        assert isinstance(server_side, ClientSocket)
        assert sheddable.services.rooms.member_of(server_side) is None  # nothing half-joined
    finally:
        busy = False
        await hogging
    async with asyncio.timeout(10):
        while (await _health(sheddable))["status"] != "ok":
            await asyncio.sleep(0.1)
    joined = await socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert joined["classId"] == room.class_id
    await socket.close()

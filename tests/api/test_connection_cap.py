"""The cap on open HTTP connections (``HTTP_MAX_CONNECTIONS``, ``..._PER_ADDRESS``), against
``python -m api`` as a real process over real TCP: a connection beyond is answered 503 with
the error envelope and ``Retry-After`` and closed, a closed one frees its slot, and
WebSockets count."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from api.connections import RETRY_AFTER_SECONDS, TOO_MANY_CONNECTIONS, ConnectionCap
from scripts.synthpeer.api_client import ClassroomApi
from tests.raw_http import close_stream, read_response
from tests.server_process import ServerProcess

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
ENVELOPE = {"success": False, "error": TOO_MANY_CONNECTIONS}


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[int, int], ServerProcess]]:
    started: list[ServerProcess] = []

    def make(total: int, per_address: int) -> ServerProcess:
        process = ServerProcess(
            {
                "DATA_DIR": str(tmp_path / "data"),
                "HTTP_MAX_CONNECTIONS": str(total),
                "HTTP_MAX_CONNECTIONS_PER_ADDRESS": str(per_address),
                "PASSWORD_HASH_COST": "10",
            },
            tmp_path / "server.log",
        )
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


async def _connect(server: ServerProcess, source: str) -> Connection:
    # Every 127.0.0.0/8 address is this host's: each source is another client address.
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))


async def _get(connection: Connection, path: str = "/health") -> tuple[int, dict[str, str], bytes]:
    reader, writer = connection
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    async with asyncio.timeout(5):
        return await read_response(reader)


async def _refused(server: ServerProcess, source: str) -> None:
    started = time.monotonic()
    connection = await _connect(server, source)
    status, headers, body = await _get(connection)
    assert (status, headers["retry-after"], json.loads(body)) == (
        503,
        str(RETRY_AFTER_SECONDS),
        ENVELOPE,
    )
    assert headers["connection"].lower() == "close"
    async with asyncio.timeout(5):
        assert await connection[0].read() == b""  # and closed
    assert time.monotonic() - started < 1
    await _close(connection)


async def _close(connection: Connection) -> None:
    await close_stream(connection[1])


async def test_connections_beyond_the_caps_get_503_and_a_closed_one_frees_its_slot(
    start: Callable[[int, int], ServerProcess],
) -> None:
    server = start(4, 2)
    await server.start()
    first = [await _connect(server, "127.0.0.1") for _ in range(2)]
    for connection in first:  # answered: they hold their slots (keep-alive)
        assert (await _get(connection))[0] == 200
    await _refused(server, "127.0.0.1")  # a third from the same address

    second = [await _connect(server, "127.0.0.2") for _ in range(2)]
    for connection in second:
        assert (await _get(connection))[0] == 200
    await _refused(server, "127.0.0.3")  # four open: the server-wide cap
    await _refused(server, "127.0.0.2")
    status, _, body = await _get(first[1], "/metrics")
    assert status == 200
    samples = dict(
        line.rsplit(" ", 1)
        for line in body.decode().splitlines()
        if line.startswith("classroom_http")
    )
    assert samples['classroom_http_connections_refused_total{cap="per_address"}'] == "1.0"
    assert samples['classroom_http_connections_refused_total{cap="total"}'] == "2.0"
    assert samples["classroom_http_connections"] == "4.0"

    await _close(first[0])
    async with asyncio.timeout(5):
        while True:  # the server sees the close shortly
            connection = await _connect(server, "127.0.0.3")
            status, _, _ = await _get(connection)
            if status == 200:
                break
            await _close(connection)
            await asyncio.sleep(0.05)
    assert (await _get(first[1]))[0] == 200  # the others were never disturbed
    for held in (first[1], *second, connection):
        await _close(held)
    # The first refusal is logged; the next ones within a minute are only counted.
    log = server.log_path.read_text()
    assert log.count("refused a connection from 127.0.0.1: HTTP_MAX_CONNECTIONS_PER_ADDRESS") == 1
    assert "refused a connection from 127.0.0.3" not in log


async def test_open_websockets_hold_their_slots(
    start: Callable[[int, int], ServerProcess],
) -> None:
    server = start(2, 2)
    await server.start()
    # REST calls close their connection after each answer, so only the sockets stay open.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        api = ClassroomApi(server.base_url, http)
        student = await api.register("S", "s@school.test", "student")
        sockets = [await api.open_socket(student.token) for _ in range(2)]
        for ws in sockets:  # authenticated: a round trip each
            await ws.send("MY_ATTENDANCE", {})
            await ws.next("ERROR")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.open_socket(student.token)
        assert refused.value.status == 503
        status, answer = await api.request("GET", "/health")
        assert (status, answer) == (503, ENVELOPE)

        await sockets[0].close()
        async with asyncio.timeout(5):
            while True:
                with contextlib.suppress(aiohttp.WSServerHandshakeError):
                    sockets[0] = await api.open_socket(student.token)
                    break
                await asyncio.sleep(0.05)
        for ws in sockets:
            await ws.close()


def test_a_trusted_proxy_is_held_to_the_server_wide_cap_only() -> None:
    cap = ConnectionCap(total=5, per_address=2, uncapped=frozenset({"10.0.0.1"}))
    assert [cap.admit("10.0.0.1") for _ in range(4)] == [True] * 4
    assert [cap.admit("192.0.2.7") for _ in range(2)] == [True, False]  # five: full
    cap.release("10.0.0.1")
    cap.release("10.0.0.1")
    assert [cap.admit("192.0.2.7") for _ in range(2)] == [True, False]  # two from it
    assert [cap.admit(None) for _ in range(2)] == [True, False]  # no address: in all only
    cap.release("192.0.2.7")
    assert cap.admit(None) and (cap.open, cap.of("192.0.2.7")) == (5, 1)

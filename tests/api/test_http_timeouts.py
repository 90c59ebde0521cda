"""Slow and idle HTTP clients against ``python -m api`` as a real process, over raw TCP:
a body that trickles in is answered 408 and let go, an idle keep-alive connection is
closed, and the server keeps answering everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.validation import BODY_TOO_SLOW
from tests.raw_http import close_stream, read_response
from tests.server_process import ServerProcess


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "HTTP_KEEPALIVE_SECONDS": "0.5",
            "HTTP_BODY_TIMEOUT_SECONDS": "0.5",
        },
        tmp_path / "server.log",
    )
    await process.start()
    try:
        yield process
    finally:
        process.stop()


async def _connect(server: ServerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def test_a_trickling_body_gets_408_and_an_idle_connection_is_closed(
    server: ServerProcess,
) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    started = time.monotonic()
    async with asyncio.timeout(5):
        status, _, body = await read_response(reader)
    assert status == 408 and time.monotonic() - started >= 0.4
    assert json.loads(body) == {"success": False, "error": BODY_TOO_SLOW}
    await close_stream(writer)

    # A keep-alive connection left idle after a request is closed by the server.
    reader, writer = await _connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers.get("connection", "keep-alive").lower() != "close"
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the server
    await close_stream(writer)


async def test_headers_that_trickle_in_or_never_come_do_not_hold_a_connection(
    server: ServerProcess,
) -> None:
    # Slowloris: a header line every 0.2 s never completes the request; the connection is
    # closed within the keep-alive time all the same (it does not restart the clock).
    reader, writer = await _connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n")
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        while not reader.at_eof() and time.monotonic() - started < 5:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await reader.read()
    assert time.monotonic() - started < 3
    await close_stream(writer)
    silent_reader, silent_writer = await _connect(server)  # connects and sends nothing
    async with asyncio.timeout(5):
        assert await silent_reader.read() == b""
    await close_stream(silent_writer)


async def test_slow_clients_do_not_keep_others_waiting(server: ServerProcess) -> None:
    slow = [await _connect(server) for _ in range(50)]
    for _, writer in slow:
        writer.write(b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{")
    reader, writer = await _connect(server)
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(5):
        status, _, _ = await read_response(reader)
    assert status == 200
    await close_stream(writer)
    async with asyncio.timeout(10):
        for slow_reader, _ in slow:
            assert (await read_response(slow_reader))[0] == 408
    for _, slow_writer in slow:
        await close_stream(slow_writer)

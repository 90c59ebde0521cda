"""A TCP load balancer on loopback, for the cluster's tests and measurements: one URL in
front of several nodes, as a reverse proxy would be (docs/deploy.md, "A cluster").

Each new connection goes to the next backend in turn; a backend that refuses the
connection (a node that died) is skipped for that connection. Bytes are copied both ways
unchanged, so HTTP and WebSocket connections work alike, and closing either end closes
the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class TcpBalancer:
    """Round-robin over `backends` (``(host, port)``); `start` binds ``127.0.0.1``."""

    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections: dict[tuple[str, int], int] = {b: 0 for b in self.backends}
        """Connections handed to each backend so far."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            await self._pipe(reader, writer)
        except asyncio.CancelledError:
            pass  # stopped: asyncio's server callback would report a cancelled handler
        finally:
            self._pipes.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await self._connect()
            if upstream is None:
                return
            up_reader, up_writer = upstream
            try:
                await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        start = next(self._turn)
        for offset in range(len(self.backends)):
            backend = self.backends[(start + offset) % len(self.backends)]
            try:
                connection = await asyncio.open_connection(*backend)
            except OSError:
                continue  # that node is down: the next one
            self.connections[backend] += 1
            return connection
        log.warning("balancer: no backend accepts connections")
        return None


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()

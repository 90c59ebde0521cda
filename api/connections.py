"""The HTTP listener, with a cap on open connections: in all, and per client address.

A connection beyond either cap is answered at once, ``503`` with the JSON error envelope
and ``Retry-After``, then closed, instead of being accepted and left to wait. WebSockets
are HTTP connections and count the same for as long as they are open. The address is the
socket's peer: a connection from a reverse proxy in ``TRUSTED_PROXIES`` carries many
clients, so only the server-wide cap applies to it.

`serve` runs the application as ``aiohttp.web.run_app`` does (signals, graceful stop),
on a site whose connections pass through the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

TOO_MANY_CONNECTIONS = "Too many connections, try again shortly"
RETRY_AFTER_SECONDS = 5
LINGER_SECONDS = 2.0
"""How long a refused connection may stay to read its answer before it is cut."""
WARN_EVERY_SECONDS = 60.0

DRAIN_HOOKS = web.AppKey("drain_hooks", list[Callable[[], Awaitable[None]]])
"""Run on SIGTERM before the graceful stop begins (a cluster node drains); a second
SIGTERM, or SIGINT, stops at once."""


def refusal() -> bytes:
    """The whole HTTP response a refused connection gets."""
    body = json.dumps({"success": False, "error": TOO_MANY_CONNECTIONS}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = refusal()


class ConnectionCap:
    """Counts open connections, in all and per address, and admits them within caps."""

    def __init__(
        self, total: int, per_address: int, uncapped: frozenset[str] = frozenset()
    ) -> None:
        self.total = total
        self.per_address = per_address
        self.uncapped = uncapped
        """Addresses only the server-wide cap applies to (trusted reverse proxies)."""
        self.open = 0
        self.refused = 0
        self.refused_by: Counter[str] = Counter()
        """Refusals by the cap that made them: ``total`` or ``per_address``."""
        self._by_address: Counter[str] = Counter()
        self._warned_at: float | None = None

    def of(self, address: str) -> int:
        return self._by_address[address]

    def admit(self, address: str | None) -> bool:
        """Count a new connection from `address` (None: not an IP peer), if there is room."""
        if self.open >= self.total:
            return self._refuse(address, "HTTP_MAX_CONNECTIONS", "total")
        if address is not None and address not in self.uncapped:
            if self._by_address[address] >= self.per_address:
                return self._refuse(address, "HTTP_MAX_CONNECTIONS_PER_ADDRESS", "per_address")
            self._by_address[address] += 1
        self.open += 1
        return True

    def _refuse(self, address: str | None, setting: str, cap: str) -> bool:
        self.refused += 1
        self.refused_by[cap] += 1
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now  # at most once a minute: a flood must not flood the log
            log.warning(
                "refused a connection from %s: %s reached (%d open); %d refused so far",
                address,
                setting,
                self.open,
                self.refused,
            )
        return False

    def release(self, address: str | None) -> None:
        self.open -= 1
        if address is not None and address in self._by_address:
            self._by_address[address] -= 1
            if self._by_address[address] <= 0:
                del self._by_address[address]


def _peer_address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


class CappedConnection(asyncio.Protocol):
    """One accepted connection: handed to aiohttp's protocol if the cap admits it, else
    answered with the refusal, half-closed, and cut after `LINGER_SECONDS` at most.

    The refused side reads and drops what the client sends until it hangs up: closing
    with its request unread would reset the connection, and the client could lose the
    answer."""

    def __init__(self, cap: ConnectionCap, handler: Callable[[], asyncio.Protocol]) -> None:
        self._cap = cap
        self._make_handler = handler
        self._inner: asyncio.Protocol | None = None
        self._address: str | None = None
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._address = _peer_address(transport)
        if self._cap.admit(self._address):
            self._inner = self._make_handler()
            self._inner.connection_made(transport)
            return
        assert isinstance(transport, asyncio.Transport)
        transport.write(_REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
            self._linger = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.abort)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return False  # refused: the client has read its answer and hung up

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self._inner is not None:
            self._cap.release(self._address)
            self._inner.connection_lost(exc)


class CappedSite(web.TCPSite):
    """A TCP site whose connections pass through a `ConnectionCap`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, cap: ConnectionCap) -> None:
        super().__init__(runner, host, port)
        self.cap = cap

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        cap = self.cap
        self._server = await asyncio.get_running_loop().create_server(
            lambda: CappedConnection(cap, server), self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    cap: ConnectionCap,
    announce: Callable[[str], None],
    **handler: Any,
) -> None:
    runner = web.AppRunner(app, handle_signals=True, **handler)
    await runner.setup()
    stopping = asyncio.Event()
    draining: list[asyncio.Task[None]] = []

    async def drain() -> None:
        try:
            for hook in app.get(DRAIN_HOOKS, []):
                await hook()
        except Exception:
            log.exception("draining failed; stopping now")
        finally:
            stopping.set()

    def terminated() -> None:
        if draining or not app.get(DRAIN_HOOKS):
            stopping.set()
        else:
            log.info("SIGTERM: draining before the stop (a second SIGTERM stops at once)")
            draining.append(asyncio.get_running_loop().create_task(drain()))

    # Replaces aiohttp's SIGTERM handler (GracefulExit); SIGINT keeps it.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminated)
    try:
        site = CappedSite(runner, host, port, cap)
        await site.start()
        announce(f"======== Running on {site.name} ========")
        await stopping.wait()  # until SIGTERM (after any drain), or SIGINT cancels it
    finally:
        for task in draining:
            task.cancel()
        await runner.cleanup()


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    cap: ConnectionCap,
    announce: Callable[[str], None],
    **handler: Any,
) -> None:
    """Serve `app` until SIGINT or SIGTERM, then stop gracefully (``web.run_app``'s
    sequence: the app's shutdown and cleanup first, then any task left is cancelled).
    `handler` goes to aiohttp's request handler (``keepalive_timeout``, ...)."""
    loop = asyncio.new_event_loop()
    main = loop.create_task(_serve(app, host, port, cap, announce, **handler))
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_left(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)


def _cancel_left(loop: asyncio.AbstractEventLoop) -> None:
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    for task in left:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception while the server stopped",
                    "exception": task.exception(),
                    "task": task,
                }
            )

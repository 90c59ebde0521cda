"""``GET /ws``: authenticate, then pump frames between the socket and the event router."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from ..auth.tokens import token_from_header
from ..errors import (
    WS_INVALID_FORMAT,
    WS_UNAUTHORIZED,
    WS_UPGRADE_REQUIRED,
    InvalidRequest,
    Unauthorized,
    error_event,
)
from ..hub import SHUTDOWN_MESSAGE
from ..services import SERVICES
from ..store.outage import outage_error
from .connection import ClientSocket, EventSocket
from .events import EventRouter
from .limits import POLICY_VIOLATION, TOO_MANY_SOCKETS, EventBucket

log = logging.getLogger(__name__)

DisconnectHook = Callable[[EventSocket], Awaitable[None]]
FRAME_TOO_LARGE = "Message too large"
TRY_AGAIN_LATER = 1013
"""WebSocket close code: the server cannot take the socket now (RFC 6455 registry)."""


def websocket_handler(
    router: EventRouter, disconnect_hooks: list[DisconnectHook]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``/ws``; it only pumps and never touches rooms itself."""

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        settings = services.settings
        ws = web.WebSocketResponse(max_msg_size=settings.ws_max_frame_bytes, heartbeat=30)
        if not ws.can_prepare(request).ok:  # a plain GET: the error envelope, not aiohttp's text
            raise InvalidRequest(WS_UPGRADE_REQUIRED)
        await ws.prepare(request)
        token = request.query.get("token") or token_from_header(
            request.headers.get("Authorization")
        )
        try:
            user = await services.authenticator.authenticate(token)
        except Unauthorized:
            await ws.send_json({"event": "ERROR", "data": error_event(WS_UNAUTHORIZED)})
            await ws.close()
            return ws
        except Exception as error:  # the upgrade is answered: an outage is told on the socket
            outage = outage_error(error)
            if outage is None:
                raise
            log.warning("socket authentication: store unreachable: %s", error)
            await ws.send_json({"event": "ERROR", "data": error_event(outage.message)})
            await ws.close(code=TRY_AGAIN_LATER, message=b"storage unavailable")
            return ws
        if services.hub.count_of(user.id) >= settings.ws_max_sockets_per_user:
            await ws.send_json({"event": "ERROR", "data": error_event(TOO_MANY_SOCKETS)})
            await ws.close(code=POLICY_VIOLATION, message=b"too many connections")
            return ws
        socket = ClientSocket(
            ws,
            user,
            request.query.get("classId") or None,
            settings.ws_send_queue,
            EventBucket(settings.ws_events_per_second, settings.ws_event_burst),
        )
        services.hub.add(socket)
        if services.hub.shutting_down:  # connected while the server was stopping
            await socket.flush_and_close(code=1001, message=SHUTDOWN_MESSAGE)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await router.dispatch(socket, message.data)
                elif message.type == WSMsgType.BINARY:
                    socket.send("ERROR", error_event(WS_INVALID_FORMAT))
                elif message.type == WSMsgType.ERROR:
                    log.info("socket %s closed: %s", socket.id, ws.exception())
                    break
        finally:
            services.hub.remove(socket)
            # aiohttp cancels this handler when the client's connection goes: the leave
            # (media closed, PEER_LEFT to the others) must finish all the same.
            cleanup = asyncio.ensure_future(_disconnected(socket, disconnect_hooks))
            _cleanups.add(cleanup)
            cleanup.add_done_callback(_cleanups.discard)
            await asyncio.shield(cleanup)
        return ws

    return handle


_cleanups: set[asyncio.Future[None]] = set()
"""Disconnect work running on after its handler was cancelled (kept from collection)."""


async def _disconnected(socket: EventSocket, hooks: list[DisconnectHook]) -> None:
    for hook in hooks:
        try:
            await hook(socket)
        except Exception:
            log.exception("disconnect hook failed for socket %s", socket.id)
    await socket.flush_and_close()

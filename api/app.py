"""The aiohttp application factory: services, routes, sockets and their lifetimes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .attendance import AttendanceService
from .auth.jwks import JwksCache
from .auth.keys import load_or_create_signing_key
from .auth.tokens import Authenticator, TokenIssuer
from .classes import ClassService
from .config import Settings
from .middleware import error_envelope
from .routes import attendance_routes, auth_routes, class_routes, meta_routes
from .services import SERVICES, Services
from .store import open_store
from .ws.attendance_events import add_attendance_events
from .ws.endpoint import DisconnectHook, websocket_handler
from .ws.events import EventRouter
from .ws.hub import SocketHub

MAX_BODY_BYTES = 64 * 1024


async def _build_services(settings: Settings) -> Services:
    store = await open_store(settings)
    key = await asyncio.to_thread(load_or_create_signing_key, settings.data_dir)
    jwks = (
        JwksCache(settings.auth0_jwks, min_refresh=settings.auth0_jwks_min_refresh_seconds)
        if settings.auth0_enabled
        else None
    )
    hub = SocketHub()
    return Services(
        settings=settings,
        store=store,
        signing_key=key,
        issuer=TokenIssuer(key, settings),
        authenticator=Authenticator(settings, store, key, jwks),
        classes=ClassService(store),
        attendance=AttendanceService(store, hub),
        hub=hub,
    )


def create_app(settings: Settings) -> web.Application:
    """A ready-to-run application; the store opens on startup and closes on cleanup."""
    app = web.Application(middlewares=[error_envelope], client_max_size=MAX_BODY_BYTES)
    events = EventRouter()
    disconnect_hooks: list[DisconnectHook] = []

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        services = await _build_services(settings)
        app[SERVICES] = services
        add_attendance_events(events, services)
        yield
        for socket in services.hub.all():
            await socket.flush_and_close()
        await services.store.close()

    app.cleanup_ctx.append(lifetime)
    for module in (auth_routes, class_routes, attendance_routes, meta_routes):
        module.setup(app)
    app.router.add_get("/ws", websocket_handler(events, disconnect_hooks))
    return app

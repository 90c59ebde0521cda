"""The aiohttp application factory: services, routes, sockets and their lifetimes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from .attendance import AttendanceService
from .auth import passwords
from .auth.jwks import JwksCache
from .auth.keys import load_or_create_signing_key
from .auth.throttle import AuthThrottle
from .auth.tokens import Authenticator, TokenIssuer
from .classes import ClassService
from .config import Settings
from .connections import DRAIN_HOOKS
from .hub import SocketHub
from .metrics import METRICS, ServerMetrics, TimedStore
from .middleware import error_envelope
from .models import ClassRecord
from .overload import LoadWatch, lag_limit_ms
from .presence.recovery import close_open_presence
from .pushes import UserPushes
from .rate_limits import HeavyRoutes
from .recordings.service import RecordingService
from .rooms.manager import RoomManager
from .rooms.room import ClassRoom
from .rooms.roster import RosterPublisher
from .routes import (
    attendance_routes,
    auth_routes,
    class_routes,
    ice_routes,
    meta_routes,
    metrics_routes,
    recording_routes,
    report_routes,
)
from .services import SERVICES, Services
from .store import open_store
from .store_cache import CachedStore
from .validation import BODY_SECONDS
from .ws.attendance_events import add_attendance_events
from .ws.classroom_events import add_classroom_events
from .ws.connection import EventSocket
from .ws.endpoint import DisconnectHook, websocket_handler
from .ws.events import EVENTS, EventRouter
from .ws.recording_events import add_recording_events
from .ws.room_events import add_room_events

if TYPE_CHECKING:
    from .cluster.node import ClusterNode
    from .relay.signalling import ClusterSignalling

MAX_BODY_BYTES = 64 * 1024


async def _build_services(settings: Settings, metrics: ServerMetrics) -> Services:
    store = await open_store(settings)
    if metrics.enabled:
        store = TimedStore.wrap(store, metrics.store_seconds)
    if settings.cluster is None:
        # Outside the timing: the histogram is of the store's calls. Not in a cluster: the
        # cache is right only while this process is the one writing what it caches, and
        # there the other nodes write the same classes, sessions, marks and presence.
        store = CachedStore.wrap(store)
    if settings.cluster is None:
        await close_open_presence(store)
    # In a cluster the store's active sessions are every node's: a node that starts must
    # not close presence still live on another one. (Which sessions a crashed node held
    # is the room -> node map's to say.)
    key = await asyncio.to_thread(
        load_or_create_signing_key, settings.data_dir, settings.jwt_signing_key_file
    )
    jwks = (
        JwksCache(settings.auth0_jwks, min_refresh=settings.auth0_jwks_min_refresh_seconds)
        if settings.auth0_enabled
        else None
    )
    hub = SocketHub()
    attendance = AttendanceService(
        store, hub, grace=timedelta(seconds=settings.presence_grace_seconds)
    )
    rooms = RoomManager(settings, store)
    roster = RosterPublisher(store, attendance)
    pushes = UserPushes(hub, store, attendance)

    def room_changed(room: ClassRoom) -> None:
        roster.schedule(room)
        connected = [m.user.id for m in room.members.values() if m.media_connected]
        pushes.statuses_changed(room.cls, room.session.id, connected)

    rooms.on_change = room_changed
    attendance.presence_closers.append(rooms.close_presence)
    # The room's media closes only after DONE has been broadcast (docs/protocol.md, DONE),
    # and before anything else is awaited: the room leaves the room list at once.
    attendance.session_ended_hooks.append(rooms.close_session)
    attendance.session_ended_hooks.append(pushes.session_ended)

    def marked(cls: ClassRecord) -> None:
        room = next((r for r in rooms.rooms if r.cls.id == cls.id), None)
        if room is not None:
            roster.schedule(room)
        pushes.statuses_changed(cls)

    attendance.marked_hooks.append(marked)
    authenticator = Authenticator(settings, store, key, jwks)
    authenticator.provisioned_hooks.append(pushes.user_signed_up)
    return Services(
        settings=settings,
        store=store,
        signing_key=key,
        issuer=TokenIssuer(key, settings),
        authenticator=authenticator,
        classes=ClassService(store),
        attendance=attendance,
        hub=hub,
        rooms=rooms,
        roster=roster,
        metrics=metrics,
        recordings=RecordingService(settings, store, rooms),
        pushes=pushes,
        passwords=passwords.PasswordWork(
            passwords.PasswordHasher(settings.password_hash_cost or passwords.DEFAULT_COST)
        ),
        throttle=AuthThrottle(settings.auth_throttle),
        load=LoadWatch(limit=lag_limit_ms(settings.overload_lag_ms) / 1000),
        heavy_routes=HeavyRoutes(settings.heavy_routes_burst, settings.heavy_routes_per_minute),
        cluster=None if settings.cluster is None else _cluster_node(settings, rooms, hub),
    )


def _cluster_node(settings: Settings, rooms: RoomManager, hub: SocketHub) -> ClusterNode:
    # Imported here: redis.asyncio alone takes ~0.2 s to import, which a single node (and
    # its restart after a crash) should not pay.
    from .cluster.node import ClusterNode

    assert settings.cluster is not None
    return ClusterNode(settings.cluster, settings.ice_addresses, rooms.counts, hub)


def _cluster_signalling(
    services: Services, events: EventRouter, disconnect_hooks: list[DisconnectHook]
) -> ClusterSignalling:
    from .relay.signalling import ClusterSignalling

    assert services.cluster is not None
    signalling = ClusterSignalling(services.cluster, services, events, list(disconnect_hooks))
    signalling.start()
    disconnect_hooks.append(signalling.socket_closed)
    return signalling


def create_app(settings: Settings) -> web.Application:
    """A ready-to-run application; the store opens on startup and closes on cleanup."""
    app = web.Application(middlewares=[error_envelope], client_max_size=MAX_BODY_BYTES)
    app[BODY_SECONDS] = settings.http_body_seconds
    metrics = ServerMetrics(enabled=settings.metrics_enabled, token=settings.metrics_token)
    app[METRICS] = metrics
    events = EventRouter(on_error=lambda error: metrics.count_error("ws", error))
    app[EVENTS] = events
    disconnect_hooks: list[DisconnectHook] = []
    app[DRAIN_HOOKS] = []

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        services = await _build_services(settings, metrics)
        app[SERVICES] = services
        metrics.watch(lambda: [room.router for room in services.rooms.rooms], services.hub.__len__)
        metrics.report_media_paths(services.rooms.media_paths)
        add_attendance_events(events, services)
        add_room_events(events, services, services.rooms)
        add_classroom_events(events, services, services.rooms)
        add_recording_events(events, services)
        await services.recordings.recover()
        if lag_limit_ms(settings.overload_lag_ms) > 0:
            services.load.start()

        async def leave_room(socket: EventSocket) -> None:
            await services.rooms.leave(socket, reason="socket closed")

        disconnect_hooks.append(leave_room)
        signalling = None
        if services.cluster is not None:
            await services.cluster.start()
            metrics.watch_cluster(services.cluster)
            signalling = _cluster_signalling(services, events, disconnect_hooks)
            app[DRAIN_HOOKS].append(signalling.drain)
        yield
        if signalling is not None:
            await signalling.stop()
        if services.cluster is not None:
            await services.cluster.stop()
        await services.load.stop()
        await services.roster.close()
        await services.pushes.close()
        await services.rooms.close_all()
        await services.recordings.close()
        await services.store.close()

    async def close_sockets(app: web.Application) -> None:
        # Runs before the server waits for open connections: without it, a graceful stop
        # would wait for every WebSocket client to hang up on its own.
        await app[SERVICES].hub.close_all()

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(close_sockets)
    for module in (
        auth_routes,
        class_routes,
        attendance_routes,
        report_routes,
        meta_routes,
        metrics_routes,
        recording_routes,
        ice_routes,
    ):
        module.setup(app)
    app.router.add_get("/ws", websocket_handler(events, disconnect_hooks))
    return app

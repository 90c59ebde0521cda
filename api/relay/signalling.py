"""Class sockets across nodes: a client keeps one URL (any node behind a load balancer),
and its room's events are relayed to the node that holds the room, as LiveKit relays
signalling between nodes over Redis.

On ``JOIN_ROOM`` the socket's node (the edge) places the class's room (``room_map``: where
it is if that node is live, else on the least loaded node) and records the placement on
the session. If the room is elsewhere, the socket's room events from then on go to that
node (``sock_in``) and what the room sends comes back (``sock_out``); the events of the
attendance record (``ATTENDANCE_MARKED``, ``MY_ATTENDANCE``, ``DONE``, ...) stay on the
edge, whose class broadcasts reach every node. Media never passes through the edge: the
room's node answers the offers, so ICE goes straight to its addresses.

A relayed socket is closed (the client reconnects and joins again, and the room is placed
again) when the room's node closes its end (``sock_end``: it stops) or disappears from the
registry (``kill -9``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from ..cluster.bus import Message, NoAnswer
from ..cluster.node import ClusterNode
from ..cluster.placement import NodeInfo
from ..cluster.room_map import (
    NoNodeAvailable,
    Placement,
    hold_room,
    placement_of,
    release_room,
)
from ..errors import ApiError, NotFound, ServiceUnavailable
from ..models import AttendanceSession, ClassRecord, Recording, User
from ..services import Services
from ..store.rules import TEACHER_NOT_FOUND
from ..ws.class_context import resolve_class
from ..ws.connection import EventSocket
from ..ws.endpoint import DisconnectHook
from ..ws.events import EventRouter
from .remote_sockets import (
    SOCK_CLOSED,
    SOCK_END,
    SOCK_IN,
    SOCK_OUT,
    RemoteSocket,
    RemoteSockets,
    user_message,
)

log = logging.getLogger(__name__)

ROOM_EVENTS = frozenset(
    {
        "JOIN_ROOM",
        "LEAVE_ROOM",
        "WEBRTC_OFFER",
        "WEBRTC_ANSWER",
        "WEBRTC_ICE_CANDIDATE",
        "MEDIA_STATE",
        "SUBSCRIPTION",
        "ROSTER",
        "CHAT",
        "CHAT_DELETE",
        "HAND",
        "HAND_LOWER",
        "POLL_START",
        "POLL_VOTE",
        "POLL_END",
        "MODERATE",
        "RECORDING_START",
        "RECORDING_STOP",
    }
)
"""The events the room's node handles; the others are the edge's."""

CLUSTER_UNAVAILABLE = "Cluster coordination unavailable, try again shortly"
NO_NODE = "No server takes new rooms now, try again shortly"
ROOM_NODE_UNREACHABLE = "The room's server is unreachable, try again shortly"
ROOM_MOVED = 1012
"""WebSocket close code for a socket whose room's node went away: "service restart"
(RFC 6455 registry), which clients answer by reconnecting."""
CLOSE_PRESENCE, CLOSE_SESSION = "close_presence", "close_session"
RECORDING_START, RECORDING_STOP = "recording_start", "recording_stop"


class RelayedError(ApiError):
    """An error the room's node answered, with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Relay:
    socket: EventSocket
    node_id: str


class ClusterSignalling:
    """Both ends of relayed signalling on this node, and the session's end across nodes."""

    def __init__(
        self,
        node: ClusterNode,
        services: Services,
        router: EventRouter,
        disconnect_hooks: Sequence[DisconnectHook],
    ) -> None:
        self._node = node
        self._bus = node.bus
        self._services = services
        self._router = router
        self._hooks = disconnect_hooks
        self.node_id = node.settings.node_id
        self._relays: dict[int | str, _Relay] = {}
        self.remote = RemoteSockets(self._bus, router.handle, self._remote_disconnected)
        self._ask_timeout = services.settings.store_timeout_seconds + 2

    def start(self) -> None:
        self.remote.start()
        self._bus.on(SOCK_OUT, self._sock_out)
        self._bus.on(SOCK_END, self._sock_end)
        self._bus.on(CLOSE_SESSION, self._close_session)
        self._bus.answer(CLOSE_PRESENCE, self._close_presence)
        self._bus.answer(RECORDING_START, self._recording_asked)
        self._bus.answer(RECORDING_STOP, self._recording_asked)
        self._services.recordings.elsewhere = self
        self._node.registry.on_beat.append(self._nodes_seen)
        self._node.registry.with_beat.append(self._hold_rooms)
        self._router.forward = self.forward
        attendance = self._services.attendance
        attendance.session_started_hooks.append(self.session_started)
        attendance.presence_closers.append(self.close_remote_presence)
        attendance.session_ended_hooks.append(self.session_ended)

    async def stop(self) -> None:
        self._router.forward = None
        self._services.recordings.elsewhere = None
        await self.remote.close_all(ROOM_MOVED, b"room server stopping")
        for relay in list(self._relays.values()):
            await relay.socket.flush_and_close(ROOM_MOVED, b"room server stopping")

    @property
    def relayed(self) -> int:
        """Sockets here whose room is on another node."""
        return len(self._relays)

    async def _hold_rooms(self) -> None:
        """The rooms open here stay placed here (a Redis that restarted empty has their
        placements back with this node's next heartbeat, before a join could place one
        elsewhere)."""
        for room in self._services.rooms.rooms:
            if room.closed:
                continue
            mine = Placement(self.node_id, room.session.id)
            held = await hold_room(self._node.redis, room.cls.id, mine)
            if held != mine and held.session_id == room.session.id:
                log.warning(
                    "session %s: open here, but placed on %s", room.session.id, held.node_id
                )

    # -- SIGTERM: drain, then move ---------------------------------------------------
    async def drain(self) -> None:
        """Take no new rooms; let the live ones go on until they end or ``NODE_DRAIN_SECONDS``
        pass; then place them on other nodes and close every socket here with 1012, so
        their clients join again there (presence goes on within the grace)."""
        rooms = self._services.rooms
        await self._node.announce_draining()
        limit = self._node.settings.drain_seconds
        log.info("draining: %d room(s) here go on for at most %g s", len(rooms.rooms), limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        # A room ends on a session's end on any node: polled, not signalled.
        while rooms.rooms and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        if not rooms.rooms:
            log.info("drained: no room left here")
            return
        for room in rooms.rooms:
            await self._move(room.session)
        log.info("drain time over: moving the participants of %d room(s)", len(rooms.rooms))
        await self.remote.close_all(ROOM_MOVED, b"room moved")
        for socket in self._services.hub.all():
            await socket.flush_and_close(ROOM_MOVED, b"room moved")

    async def _move(self, session: AttendanceSession) -> None:
        try:
            placement = await self._node.place(session.class_id, session.id, away=True)
        except (NoNodeAvailable, RedisError, OSError) as error:
            log.warning("session %s: its room could not be moved: %s", session.id, error)
            return
        await self._record_placement(session, placement.node_id)
        log.info("session %s: room moved to %s", session.id, placement.node_id)

    # -- the edge: this node holds the client's socket ---------------------------------
    async def forward(self, socket: EventSocket, event: str, data: dict[str, Any]) -> bool:
        """Relay `event` if the socket's room is on another node (True); else leave it
        to this node's handler (False)."""
        if event not in ROOM_EVENTS:
            return False
        try:
            relay = self._relays.get(socket.id)
            if event == "JOIN_ROOM":
                target = await self._place_for_join(socket)
            elif relay is not None:
                target = relay.node_id
            elif event == "ROSTER":  # a teacher watching the class without joining the room
                target = await self._room_node_of(socket)
            else:
                target = None
        except (RedisError, OSError) as error:
            log.warning("cluster: placing a room failed: %s", error)
            raise ServiceUnavailable(CLUSTER_UNAVAILABLE) from None
        if target is None or target == self.node_id:
            if event == "JOIN_ROOM":
                await self._detach(socket)
            return False
        if event == "JOIN_ROOM" and self._services.rooms.member_of(socket) is not None:
            await self._services.rooms.leave(socket, reason="joined another room")
        relay = self._relays.get(socket.id)
        if relay is not None and relay.node_id != target:
            await self._detach(socket)
        self._relays[socket.id] = _Relay(socket, target)
        await self._relay(socket, target, event, data)
        return True

    async def session_started(self, session: AttendanceSession) -> None:
        """A session-started hook: the room is placed at once (``POST /attendance/start``
        on any node), so the class's first join finds it placed."""
        try:
            placement = await self._node.place(session.class_id, session.id)
        except (NoNodeAvailable, RedisError, OSError) as error:  # the first join places it
            log.warning("session %s: room not placed at its start: %s", session.id, error)
            return
        await self._record_placement(session, placement.node_id)

    async def _place_for_join(self, socket: EventSocket) -> str | None:
        """The node of the room a ``JOIN_ROOM`` is about (placed now if need be); None
        when this node's handler must answer it (an error to tell, or no session)."""
        try:
            cls = await resolve_class(self._services, socket)
            session = await self._services.store.get_active_session(cls.id)
        except ApiError:
            return None
        except Exception:  # the store is out: a room open here goes on (the handler's)
            return None
        if session is None:
            return None
        try:
            placement = await self._node.place(cls.id, session.id)
        except NoNodeAvailable:
            raise ServiceUnavailable(NO_NODE) from None
        except (RedisError, OSError):
            if self._services.rooms.live_room(cls.id) is not None:
                return None  # Redis is out: the room open here goes on
            raise
        if session.node_id != placement.node_id:
            await self._record_placement(session, placement.node_id)
        return placement.node_id

    async def _room_node_of(self, socket: EventSocket) -> str | None:
        """The node the class's room is placed on now, if any (None: answer here)."""
        try:
            cls = await resolve_class(self._services, socket)
        except Exception:  # refused, or the store is out: the handler here says so
            return None
        placement = await placement_of(self._node.redis, cls.id)
        live = {node.node_id for node in self._node.registry.nodes}
        if placement is None or placement.node_id not in live:
            return None  # nowhere live: the roster without a room, answered here
        return placement.node_id

    async def _record_placement(self, session: AttendanceSession, node_id: str) -> None:
        try:
            await self._services.store.place_session(session.id, node_id)
        except Exception as error:  # the room works all the same; the record is the map's
            log.warning("session %s: placement on %s not stored: %s", session.id, node_id, error)

    async def _relay(self, socket: EventSocket, node_id: str, event: str, data: Any) -> None:
        message = {
            "t": SOCK_IN,
            "edge": self.node_id,
            "socket": socket.id,
            "user": user_message(socket.user),
            "classId": socket.fixed_class_id,
            "event": event,
            "data": data,
        }
        try:
            delivered = await self._bus.send(node_id, message)
        except (RedisError, OSError) as error:
            log.warning("cluster: %s not relayed to %s: %s", event, node_id, error)
            raise ServiceUnavailable(CLUSTER_UNAVAILABLE) from None
        if delivered == 0:  # not on the bus: dead (then its sockets close at its TTL) or
            raise ServiceUnavailable(ROOM_NODE_UNREACHABLE)  # resubscribing after an outage

    async def _detach(self, socket: EventSocket) -> None:
        relay = self._relays.pop(socket.id, None)
        if relay is None:
            return
        message = {"t": SOCK_CLOSED, "edge": self.node_id, "socket": socket.id}
        try:
            await self._bus.send(relay.node_id, message)
        except (RedisError, OSError) as error:
            log.warning("cluster: the close of socket %s not relayed: %s", socket.id, error)

    async def socket_closed(self, socket: EventSocket) -> None:
        """The disconnect hook of this node's sockets: the room's node is told."""
        await self._detach(socket)

    def _sock_out(self, message: Message) -> None:
        relay = self._relays.get(message["socket"])
        if relay is not None:
            relay.socket.send(str(message["event"]), dict(message.get("data") or {}))

    async def _sock_end(self, message: Message) -> None:
        relay = self._relays.pop(message["socket"], None)
        if relay is None:
            return
        code = int(message.get("code") or 1000)
        reason = str(message.get("reason") or "").encode()
        await relay.socket.flush_and_close(code, reason)

    def _nodes_seen(self, nodes: list[NodeInfo]) -> None:
        if not self._node.registry.settled():
            return  # Redis is back from an outage: the others may not have beaten yet
        live = {node.node_id for node in nodes}
        self.remote.edges_gone(live)
        for relay in [r for r in self._relays.values() if r.node_id not in live]:
            log.info("socket %s: room node %s is gone", relay.socket.id, relay.node_id)
            self._relays.pop(relay.socket.id, None)
            task = asyncio.get_running_loop().create_task(
                relay.socket.flush_and_close(ROOM_MOVED, b"room server gone")
            )
            self._node.keep(task)

    # -- the room's node: relayed sockets here, and the session's end -------------------
    async def _remote_disconnected(self, socket: RemoteSocket) -> None:
        for hook in self._hooks:
            await hook(socket)

    async def close_remote_presence(self, session: AttendanceSession) -> None:
        """A presence closer of the attendance service: a room on another node writes its
        last presence before the statuses are final."""
        if self._services.rooms.room_for_session(session.id) is not None:
            return  # here: closed by the room manager's own closer
        node_id = await self._room_node(session)
        if node_id is None or node_id == self.node_id:
            return
        try:
            await self._bus.ask(
                node_id, CLOSE_PRESENCE, {"sessionId": session.id}, self._ask_timeout
            )
        except (NoAnswer, RuntimeError, RedisError, OSError) as error:
            log.warning("session %s: presence not closed on %s: %s", session.id, node_id, error)

    async def session_ended(self, session: AttendanceSession) -> None:
        """A session-ended hook: the room's node closes the room; the map forgets it."""
        node_id = await self._room_node(session)
        if node_id is None:
            return
        try:
            if node_id != self.node_id:
                await self._bus.send(node_id, {"t": CLOSE_SESSION, "sessionId": session.id})
            placement = await placement_of(self._node.redis, session.class_id)
            if placement is not None and placement.session_id == session.id:
                await release_room(self._node.redis, session.class_id, placement)
        except (RedisError, OSError) as error:
            log.warning("session %s: its room's end not relayed: %s", session.id, error)

    async def _room_node(self, session: AttendanceSession) -> str | None:
        try:
            placement = await placement_of(self._node.redis, session.class_id)
        except (RedisError, OSError):
            return session.node_id
        if placement is not None and placement.session_id == session.id:
            return placement.node_id
        return session.node_id

    # -- REST recording start/stop for a room on another node -------------------------
    async def start_recording(self, user: User, cls: ClassRecord) -> Recording | None:
        return await self._recording_elsewhere(RECORDING_START, user, cls)

    async def stop_recording(self, user: User, cls: ClassRecord) -> Recording | None:
        return await self._recording_elsewhere(RECORDING_STOP, user, cls)

    async def _recording_elsewhere(
        self, kind: str, user: User, cls: ClassRecord
    ) -> Recording | None:
        try:
            placement = await placement_of(self._node.redis, cls.id)
        except (RedisError, OSError):
            raise ServiceUnavailable(CLUSTER_UNAVAILABLE) from None
        if placement is None or placement.node_id == self.node_id:
            return None
        body = {"userId": user.id, "classId": cls.id}
        try:
            answer = await self._bus.ask(placement.node_id, kind, body, self._ask_timeout)
        except (NoAnswer, RedisError, OSError):
            raise ServiceUnavailable(ROOM_NODE_UNREACHABLE) from None
        if "error" in answer:
            raise RelayedError(int(answer["status"]), str(answer["error"]))
        return await self._services.store.get_recording(str(answer["recordingId"]))

    async def _recording_asked(self, message: Message) -> dict[str, Any]:
        """The room is here: start or stop its recording for the teacher who asked."""
        user = await self._services.store.get_user(str(message["userId"]))
        try:
            if user is None:
                raise NotFound(TEACHER_NOT_FOUND)
            cls = await self._services.classes.get(str(message["classId"]))
            recordings = self._services.recordings
            if message["kind"] == RECORDING_START:
                recording = await recordings.start(user, cls)
            else:
                recording = await recordings.stop(user, cls)
        except ApiError as error:
            return {"status": error.status, "error": error.message}
        return {"recordingId": recording.id}

    async def _close_presence(self, message: Message) -> bool:
        session = await self._services.store.get_session(str(message["sessionId"]))
        if session is None:
            return False
        await self._services.rooms.close_presence(session)
        return True

    async def _close_session(self, message: Message) -> None:
        session = await self._services.store.get_session(str(message["sessionId"]))
        if session is not None:
            await self._services.rooms.close_session(session)

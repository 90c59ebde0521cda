"""The room's end of relayed signalling: the class sockets whose clients are connected to
another node (the "edge") while their room is here.

Each such socket is a `RemoteSocket`: the event handlers see it as any socket (its user,
its class, its room membership), the events it is sent go back to its edge in order, and
the events its client sends arrive from the edge in order and are handled one at a time,
as a local socket's are. The edge applies the client's rate limit before it relays.

Messages (``api.cluster.bus``): ``sock_in`` (edge → here: one client event), ``sock_closed``
(edge → here: the client's socket closed), ``sock_out`` (here → edge: one event for the
client), ``sock_end`` (here → edge: this end closed, so the client reconnects and joins
again wherever its room is then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from ..cluster.bus import ClusterBus, Message
from ..models import User
from ..ws.limits import EventBucket

log = logging.getLogger(__name__)

SOCK_IN, SOCK_CLOSED, SOCK_OUT, SOCK_END = "sock_in", "sock_closed", "sock_out", "sock_end"
QUEUE_SIZE = 512
"""Events queued per relayed socket each way (a local socket's send queue is alike)."""

Handle = Callable[["RemoteSocket", str, dict[str, Any]], Awaitable[None]]
Disconnected = Callable[["RemoteSocket"], Awaitable[None]]


def user_message(user: User) -> dict[str, Any]:
    """The user a relayed event is from, as the edge authenticated them."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "createdAt": user.created_at.isoformat(),
    }


def user_from(data: dict[str, Any]) -> User:
    return User(
        id=data["id"],
        name=str(data["name"]),
        email=str(data["email"]),
        role=data["role"],
        created_at=datetime.fromisoformat(data["createdAt"]),
    )


class RemoteSocket:
    """A class socket whose client is connected to node `edge` (its socket `socket_id`)."""

    def __init__(
        self,
        bus: ClusterBus,
        edge: str,
        socket_id: int,
        user: User,
        fixed_class_id: str | None,
        handle: Handle,
    ) -> None:
        self.edge = edge
        self.socket_id = socket_id
        self.id = f"{edge}/{socket_id}"
        self.user = user
        self.fixed_class_id = fixed_class_id
        self.joined_session_id: str | None = None
        self.events: EventBucket | None = None  # the edge limits its client
        self._bus = bus
        self._handle = handle
        self._closing = False
        self.edge_closed = False
        """The client's socket closed at the edge: nothing to tell it any more."""
        self._outbox: asyncio.Queue[Message | None] = asyncio.Queue(QUEUE_SIZE)
        self._inbox: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(QUEUE_SIZE)
        self._writer = asyncio.create_task(self._write(), name=f"relay-out-{self.id}")
        self._reader = asyncio.create_task(self._read(), name=f"relay-in-{self.id}")

    @property
    def closed(self) -> bool:
        return self._closing

    def send(self, event: str, data: dict[str, Any]) -> None:
        if self._closing:
            return
        message = {"t": SOCK_OUT, "socket": self.socket_id, "event": event, "data": data}
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:  # the edge or Redis does not keep up: as a slow client
            log.warning("closing relayed socket %s: send queue full", self.id)
            asyncio.get_running_loop().create_task(self.flush_and_close(1008, b"too slow"))

    def received(self, event: str, data: dict[str, Any]) -> bool:
        """Queue one of the client's events; False if the queue is full."""
        try:
            self._inbox.put_nowait((event, data))
        except asyncio.QueueFull:
            return False
        return True

    async def _read(self) -> None:
        while (item := await self._inbox.get()) is not None:
            await self._handle(self, *item)

    async def _write(self) -> None:
        while (message := await self._outbox.get()) is not None:
            try:
                await self._bus.send(self.edge, message)
            except (RedisError, OSError) as error:
                log.warning("relayed socket %s: an event was not relayed: %s", self.id, error)

    async def finish_events(self) -> None:
        """Wait for the client's events queued so far to be handled (the socket closed at
        the edge: its last events still count, as a local socket's do)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def flush_and_close(self, code: int = 1000, message: bytes = b"") -> None:
        """Deliver what is queued, then tell the edge to close its client; idempotent."""
        if self._closing:
            return
        self._closing = True
        if not self.edge_closed:
            end = {
                "t": SOCK_END,
                "socket": self.socket_id,
                "code": code,
                "reason": message.decode(),
            }
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(end)
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
        except TimeoutError:
            self._writer.cancel()
        if not self._reader.done() and asyncio.current_task() is not self._reader:
            self._reader.cancel()


class RemoteSockets:
    """Every relayed socket of this node, by edge and socket id."""

    def __init__(self, bus: ClusterBus, handle: Handle, disconnected: Disconnected) -> None:
        self._bus = bus
        self._handle = handle
        self._disconnected = disconnected
        self._sockets: dict[tuple[str, int], RemoteSocket] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._bus.on(SOCK_IN, self._sock_in)
        self._bus.on(SOCK_CLOSED, self._sock_closed)

    def __len__(self) -> int:
        return len(self._sockets)

    def _sock_in(self, message: Message) -> None:
        key = (str(message["edge"]), int(message["socket"]))
        socket = self._sockets.get(key)
        if socket is None:
            socket = RemoteSocket(
                self._bus,
                key[0],
                key[1],
                user_from(message["user"]),
                message.get("classId"),
                self._handle,
            )
            self._sockets[key] = socket
        if not socket.received(str(message["event"]), dict(message.get("data") or {})):
            log.warning("closing relayed socket %s: too many events queued", socket.id)
            self._close(key, edge_closed=False, code=1008, reason=b"too many events")

    def _sock_closed(self, message: Message) -> None:
        self._close((str(message["edge"]), int(message["socket"])), edge_closed=True)

    def edges_gone(self, live: set[str]) -> None:
        """The nodes not in `live` are gone: their clients' sockets are closed here."""
        for key in [key for key in self._sockets if key[0] not in live]:
            log.info("relayed socket %s/%s: its node is gone", *key)
            self._close(key, edge_closed=True)

    def _close(
        self, key: tuple[str, int], *, edge_closed: bool, code: int = 1000, reason: bytes = b""
    ) -> None:
        socket = self._sockets.pop(key, None)
        if socket is None:
            return
        socket.edge_closed = edge_closed
        task = asyncio.get_running_loop().create_task(self._closed(socket, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _closed(self, socket: RemoteSocket, code: int, reason: bytes) -> None:
        if socket.edge_closed:
            await socket.finish_events()
        try:
            await self._disconnected(socket)
        except Exception:
            log.exception("disconnect of relayed socket %s failed", socket.id)
        await socket.flush_and_close(code, reason)

    async def close_all(self, code: int, reason: bytes) -> None:
        """This node stops: every relayed client is told to reconnect (its edge closes it
        with `code`)."""
        for key in list(self._sockets):
            self._close(key, edge_closed=False, code=code, reason=reason)
        await asyncio.gather(*self._closing, return_exceptions=True)

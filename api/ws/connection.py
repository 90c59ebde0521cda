"""One client WebSocket with a bounded send queue, so a slow client never stalls a room."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from typing import Any, Protocol

from aiohttp import web

from ..models import User
from .limits import EventBucket

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class EventSocket(Protocol):
    """What an event handler knows of the socket an event came on: a client's own
    (`ClientSocket`) or, in a cluster, one whose client is connected to another node
    (``api.relay.remote_sockets.RemoteSocket``)."""

    @property
    def id(self) -> int | str: ...

    @property
    def user(self) -> User: ...

    @property
    def fixed_class_id(self) -> str | None:
        """The ``classId`` the socket was opened with, if any."""

    joined_session_id: str | None

    @property
    def events(self) -> EventBucket | None:
        """The events its client may still send now (None: no limit here)."""

    @property
    def closed(self) -> bool: ...

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Queue one event for the client; never blocks."""

    async def flush_and_close(self, code: int = 1000, message: bytes = b"") -> None:
        """Deliver what is queued, then close; idempotent."""


class ClientSocket:
    """A connected, authenticated socket: its user, its class binding and its outbox.

    ``send`` never blocks: frames go to a bounded queue drained by one writer task.
    A client that lets the queue fill up is disconnected rather than slowing others.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        user: User,
        class_id: str | None,
        queue_size: int,
        events: EventBucket | None = None,
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.user = user
        self.events = events
        """The events this client may still send now (None: no limit)."""
        self.fixed_class_id = class_id
        self.joined_session_id: str | None = None
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._writer = asyncio.create_task(self._drain(), name=f"ws-writer-{self.id}")
        self._closing = False

    @property
    def closed(self) -> bool:
        return self._closing or self.ws.closed

    def send(self, event: str, data: dict[str, Any]) -> None:
        if self.closed:
            return
        frame = json.dumps({"event": event, "data": data}, separators=(",", ":"))
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("closing socket %s of user %s: send queue full", self.id, self.user.id)
            self._closing = True
            asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"too slow"))

    async def _drain(self) -> None:
        while True:
            frame = await self._outbox.get()
            if frame is None:
                return
            try:
                await self.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return

    async def flush_and_close(self, code: int = 1000, message: bytes = b"") -> None:
        """Deliver what is queued, then stop the writer; idempotent."""
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(None)
        if not self._writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
            except TimeoutError:
                self._writer.cancel()
        if not self.ws.closed:
            await self.ws.close(code=code, message=message)

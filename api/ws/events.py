"""Decoding client frames and routing each event to its handler; errors become ``ERROR``.

Every ``ERROR`` a handler's failure causes is ``{message, event}``: ``event`` names the
client event it answers (``None`` if the frame was not even a JSON object with a string
``event``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sfu import SfuError

from ..errors import (
    INTERNAL_ERROR,
    WS_INVALID_FORMAT,
    WS_UNKNOWN_EVENT,
    ApiError,
    InternalError,
    InvalidRequest,
    TooManyRequests,
    error_event,
)
from ..media_errors import MediaOperation, media_error
from ..store.outage import outage_error
from ..validation import loads_text
from .connection import EventSocket
from .limits import POLICY_VIOLATION, TOO_MANY_EVENTS

log = logging.getLogger(__name__)

EventHandler = Callable[[EventSocket, dict[str, Any]], Awaitable[None]]
Forward = Callable[[EventSocket, str, dict[str, Any]], Awaitable[bool]]


def decode_event(raw: str) -> tuple[str, Any]:
    """``{"event": NAME, "data": ...}`` → ``(NAME, data)``; ``InvalidRequest`` unless the
    frame is a JSON object with a string ``event``."""
    try:
        frame = loads_text(raw)
    except ValueError:  # not JSON, too deep, or a string that is not Unicode text
        raise InvalidRequest(WS_INVALID_FORMAT) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
        raise InvalidRequest(WS_INVALID_FORMAT)
    return frame["event"], frame.get("data")


def event_data(data: Any) -> dict[str, Any]:
    """An event's ``data``: an object, or ``{}`` when omitted or ``null``."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequest(WS_INVALID_FORMAT)
    return data


class EventRouter:
    """Maps event names to handlers and turns every failure into an ``ERROR`` event."""

    def __init__(self, on_error: Callable[[Exception], None] = lambda error: None) -> None:
        self._handlers: dict[str, EventHandler] = {}
        self._media: dict[str, MediaOperation] = {}
        self._on_error = on_error
        """Told of every error answered with ``ERROR`` (metrics)."""
        self.forward: Forward | None = None
        """In a cluster: takes the events whose room is on another node (True: taken)."""

    def add(
        self, event: str, handler: EventHandler, *, media: MediaOperation | None = None
    ) -> None:
        """Route ``event`` to ``handler``; ``media`` names what it asks of the media plane,
        so its ``sfu`` errors are told in those words (``api.media_errors``)."""
        if event in self._handlers:
            raise ValueError(f"event {event} already has a handler")
        self._handlers[event] = handler
        if media is not None:
            self._media[event] = media

    @property
    def events(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, socket: EventSocket, raw: str) -> None:
        """Handle one frame from a client connected here (rate-limited, and in a cluster
        handed to the node of its room when `forward` takes it)."""
        event: str | None = None
        try:
            event, raw_data = decode_event(raw)
            bucket = socket.events
            if bucket is not None and not bucket.take():
                await self._refuse(socket, event, bucket.exhausted)
                return
            data = event_data(raw_data)
            if self.forward is not None and await self.forward(socket, event, data):
                return
        except Exception as error:
            self._failed(socket, event, error)
            return
        await self.handle(socket, event, data)

    async def handle(self, socket: EventSocket, event: str, data: dict[str, Any]) -> None:
        """Run the handler of a decoded event here; every failure becomes ``ERROR``."""
        try:
            handler = self._handlers.get(event)
            if handler is None:
                raise InvalidRequest(WS_UNKNOWN_EVENT)
            await handler(socket, data)
        except Exception as error:
            self._failed(socket, event, error)

    def _failed(self, socket: EventSocket, event: str | None, error: Exception) -> None:
        if isinstance(error, ApiError):
            self._answer(socket, event, error)
        elif isinstance(error, SfuError):
            media = self._media.get(event) if event is not None else None
            self._answer(socket, event, media_error(error, media))
        else:
            outage = outage_error(error)
            if outage is not None:
                log.warning("event %s on socket %s: store unreachable: %s", event, socket.id, error)
                self._answer(socket, event, outage)
                return
            log.error("event handler failed for socket %s", socket.id, exc_info=error)
            self._answer(socket, event, InternalError(INTERNAL_ERROR))

    async def _refuse(self, socket: EventSocket, event: str, exhausted: bool) -> None:
        """An event over the socket's rate: answered, not run; a client that keeps on
        after a whole burst of refusals is closed."""
        self._answer(socket, event, TooManyRequests(TOO_MANY_EVENTS))
        if exhausted:
            log.info("closing socket %s of user %s: too many events", socket.id, socket.user.id)
            await socket.flush_and_close(code=POLICY_VIOLATION, message=b"too many events")

    def _answer(self, socket: EventSocket, event: str | None, error: ApiError) -> None:
        self._on_error(error)
        socket.send("ERROR", error_event(error.message, event))


EVENTS = web.AppKey("events", EventRouter)
"""The application's event router (its handlers are added when the services start)."""

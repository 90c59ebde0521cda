"""Decoding client frames and routing each event to its handler; errors become ``ERROR``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import WS_INVALID_FORMAT, WS_UNKNOWN_EVENT, ApiError, InvalidRequest
from .connection import ClientSocket

log = logging.getLogger(__name__)

EventHandler = Callable[[ClientSocket, dict[str, Any]], Awaitable[None]]


def decode_frame(raw: str) -> tuple[str, dict[str, Any]]:
    """``{"event": NAME, "data": {...}}`` → ``(NAME, data)``; ``data`` may be omitted."""
    try:
        frame = json.loads(raw)
    except ValueError:
        raise InvalidRequest(WS_INVALID_FORMAT) from None
    if not isinstance(frame, dict) or not isinstance(frame.get("event"), str):
        raise InvalidRequest(WS_INVALID_FORMAT)
    data = frame.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest(WS_INVALID_FORMAT)
    return frame["event"], data


class EventRouter:
    """Maps event names to handlers and turns every failure into an ``ERROR`` event."""

    def __init__(self, on_error: Callable[[Exception], None] = lambda error: None) -> None:
        self._handlers: dict[str, EventHandler] = {}
        self._on_error = on_error
        """Told of every error answered with ``ERROR`` (metrics)."""

    def add(self, event: str, handler: EventHandler) -> None:
        if event in self._handlers:
            raise ValueError(f"event {event} already has a handler")
        self._handlers[event] = handler

    @property
    def events(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, socket: ClientSocket, raw: str) -> None:
        try:
            event, data = decode_frame(raw)
            handler = self._handlers.get(event)
            if handler is None:
                raise InvalidRequest(WS_UNKNOWN_EVENT)
            await handler(socket, data)
        except ApiError as error:
            self._on_error(error)
            socket.send("ERROR", {"message": error.message})
        except Exception as error:
            log.exception("event handler failed for socket %s", socket.id)
            self._on_error(error)
            socket.send("ERROR", {"message": "Internal server error"})

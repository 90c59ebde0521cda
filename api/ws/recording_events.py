"""``RECORDING_START`` / ``RECORDING_STOP``: the owning teacher records the live room."""

from __future__ import annotations

from typing import Any

from .. import access
from ..services import Services
from .class_context import resolve_class
from .connection import EventSocket
from .events import EventRouter


def add_recording_events(router: EventRouter, services: Services) -> None:
    """The room hears ``RECORDING {active, recordingId}``; the teacher needs no reply."""

    async def recording_start(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_teacher_event(socket.user)
        await services.recordings.start(socket.user, await resolve_class(services, socket))

    async def recording_stop(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_teacher_event(socket.user)
        await services.recordings.stop(socket.user, await resolve_class(services, socket))

    router.add("RECORDING_START", recording_start)
    router.add("RECORDING_STOP", recording_stop)

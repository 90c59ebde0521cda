"""The attendance events of the class WebSocket (contract kept from the seed product)."""

from __future__ import annotations

from typing import Any

from .. import access
from ..errors import InvalidRequest
from ..services import Services
from .class_context import resolve_class
from .connection import EventSocket
from .events import EventRouter

BAD_MARK = "Invalid payload: need studentId and status 'present' or 'absent'"
NOT_ENROLLED_STUDENT = "Student not enrolled in class"
NOT_YET_UPDATED = "not yet updated"


def add_attendance_events(router: EventRouter, services: Services) -> None:
    """Register ``ATTENDANCE_MARKED``, ``TODAY_SUMMARY``, ``MY_ATTENDANCE`` and ``DONE``."""

    async def attendance_marked(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_teacher_event(socket.user)
        student_id, status = data.get("studentId"), data.get("status")
        if not isinstance(student_id, str) or status not in ("present", "absent"):
            raise InvalidRequest(BAD_MARK)
        cls = await resolve_class(services, socket)
        if student_id not in cls.student_ids:
            raise InvalidRequest(NOT_ENROLLED_STUDENT)
        await services.attendance.mark(
            socket.user, cls, student_id, "present" if status == "present" else "absent"
        )

    async def today_summary(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_teacher_event(socket.user)
        cls = await resolve_class(services, socket)
        access.require_owner(socket.user, cls)
        services.hub.broadcast(cls, "TODAY_SUMMARY", await services.attendance.summary(cls))

    async def my_attendance(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_student_event(socket.user)
        cls = await resolve_class(services, socket)
        status = await services.attendance.live_status(socket.user, cls)
        socket.send("MY_ATTENDANCE", {"status": status or NOT_YET_UPDATED})

    async def done(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_teacher_event(socket.user)
        cls = await resolve_class(services, socket)
        await services.attendance.end(socket.user, cls)

    router.add("ATTENDANCE_MARKED", attendance_marked)
    router.add("TODAY_SUMMARY", today_summary)
    router.add("MY_ATTENDANCE", my_attendance)
    router.add("DONE", done)

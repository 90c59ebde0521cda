"""``/attendance``: start and end a class's session; a student's latest status."""

from __future__ import annotations

from aiohttp import web

from .. import access, validation
from ..timeutil import iso_ms
from .common import current_user, ok, services


async def start(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_teacher(user)
    body = await validation.json_object(request)
    app = services(request)
    cls = await app.classes.get_for_owner(
        user, validation.text(body, "classId", max_length=validation.MAX_ID)
    )
    session = await app.attendance.start(user, cls)
    return ok(
        {
            "classId": cls.id,
            "roomId": session.room_id,
            "sessionId": session.id,
            "startedAt": iso_ms(session.started_at),
        }
    )


async def end(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_teacher(user)
    body = await validation.json_object(request)
    app = services(request)
    cls = await app.classes.get_for_owner(
        user, validation.text(body, "classId", max_length=validation.MAX_ID)
    )
    summary = await app.attendance.end(user, cls)
    return ok({"message": "Attendance persisted", **summary.as_dict()})


async def my_attendance(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_student(user)
    app = services(request)
    cls = await app.classes.get(request.match_info["id"])
    status = await app.attendance.last_status(user, cls)
    return ok({"classId": cls.id, "status": status})


def setup(app: web.Application) -> None:
    app.router.add_post("/attendance/start", start)
    app.router.add_post("/attendance/end", end)
    app.router.add_get("/class/{id}/my-attendance", my_attendance)

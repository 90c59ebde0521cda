"""``/class``, ``/classes`` and ``/students``: classes, enrolment and the room status."""

from __future__ import annotations

from aiohttp import web

from .. import access, validation
from ..timeutil import iso_ms
from .common import current_user, ok, services


async def create_class(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_teacher(user)
    body = await validation.json_object(request)
    cls = await services(request).classes.create(user, validation.text(body, "className"))
    return ok(cls.public(), status=201)


async def add_student(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_teacher(user)
    body = await validation.json_object(request)
    student_id = validation.text(body, "studentId", max_length=validation.MAX_ID)
    app = services(request)
    cls = await app.classes.enrol(user, request.match_info["id"], student_id)
    await app.pushes.student_enrolled(cls, student_id)
    return ok(cls.public())


async def get_class(request: web.Request) -> web.Response:
    user = await current_user(request)
    app = services(request)
    cls = await app.classes.get_for_member(user, request.match_info["id"])
    students = [student.summary() for student in await app.classes.students_of(cls)]
    return ok({**cls.detail(), "students": students})


async def class_room(request: web.Request) -> web.Response:
    user = await current_user(request)
    app = services(request)
    cls = await app.classes.get_for_member(user, request.match_info["id"])
    session = await app.store.get_active_session(cls.id)
    return ok(
        {
            "classId": cls.id,
            "activeRoomId": session.room_id if session else None,
            "isActive": session is not None,
            "startedAt": iso_ms(session.started_at) if session else None,
            "sessionId": session.id if session else None,
        }
    )


async def my_classes(request: web.Request) -> web.Response:
    user = await current_user(request)
    app = services(request)
    classes = await app.classes.classes_of(user)
    active = {cls.id: await app.store.get_active_session(cls.id) for cls in classes}
    return ok([{**cls.public(), "isActive": active[cls.id] is not None} for cls in classes])


async def list_students(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_teacher(user)
    students = await services(request).store.list_users("student")
    return ok([student.summary() for student in students])


def setup(app: web.Application) -> None:
    app.router.add_post("/class", create_class)
    app.router.add_post("/class/{id}/add-student", add_student)
    app.router.add_get("/class/{id}", get_class)
    app.router.add_get("/class/{id}/room", class_room)
    app.router.add_get("/classes", my_classes)
    app.router.add_get("/students", list_students)

"""``/class``, ``/classes`` and ``/students``: the contract and its exact errors."""

from __future__ import annotations

from .conftest import RunningServer

UNAUTHORIZED = (401, "Unauthorized, token missing or invalid")
TEACHER_ONLY = (403, "Forbidden, teacher access required")
NOT_CLASS_TEACHER = (403, "Forbidden, not class teacher")
CLASS_NOT_FOUND = (404, "Class not found")
INVALID = (400, "Invalid request schema")


async def _error(
    server: RunningServer, method: str, path: str, token: str | None = None, body: object = None
) -> tuple[int, str]:
    status, answer = await server.api.request(method, path, token=token, body=body)
    assert answer["success"] is False
    return status, answer["error"]


async def test_a_teacher_creates_a_class_with_no_students(server: RunningServer) -> None:
    teacher = await server.account("teacher")
    status, answer = await server.api.request(
        "POST", "/class", token=teacher.token, body={"className": "Maths"}
    )
    assert status == 201
    assert answer["data"] == {
        "_id": answer["data"]["_id"],
        "className": "Maths",
        "teacherId": teacher.id,
        "studentIds": [],
    }


async def test_creating_a_class_checks_token_role_and_body(server: RunningServer) -> None:
    student = await server.account("student")
    teacher = await server.account("teacher")
    assert await _error(server, "POST", "/class", body={"className": "X"}) == UNAUTHORIZED
    assert await _error(server, "POST", "/class", "bad-token", {"className": "X"}) == UNAUTHORIZED
    assert await _error(server, "POST", "/class", student.token, {"className": "X"}) == TEACHER_ONLY
    for body in ({}, {"className": ""}, {"className": 7}, ["x"]):
        assert await _error(server, "POST", "/class", teacher.token, body) == INVALID


async def test_enrolling_twice_keeps_one_entry_and_get_class_lists_students(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    student = room.students[0]
    again = await server.api.enrol(room.teacher, room.class_id, student.id)
    assert again["studentIds"] == [student.id]
    for viewer in (room.teacher, student):
        data = await server.api.call("GET", f"/class/{room.class_id}", token=viewer.token)
        assert data["studentIds"] == [student.id]
        assert data["students"] == [
            {"_id": student.id, "name": student.name, "email": student.email}
        ]
        assert data["teacherId"] == room.teacher.id and data["className"] == "Physics"


async def test_enrolment_errors(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    other_teacher = await server.account("teacher")
    path = f"/class/{room.class_id}/add-student"
    student_id = room.students[0].id
    assert await _error(server, "POST", path, None, {"studentId": student_id}) == UNAUTHORIZED
    assert (
        await _error(server, "POST", path, room.students[0].token, {"studentId": student_id})
        == TEACHER_ONLY
    )
    assert await _error(server, "POST", path, room.teacher.token, {}) == INVALID
    assert await _error(server, "POST", path, room.teacher.token, {"studentId": 5}) == INVALID
    assert (
        await _error(server, "POST", path, other_teacher.token, {"studentId": student_id})
        == NOT_CLASS_TEACHER
    )
    for unknown in ("0123456789abcdef01234567", "not-an-id"):
        assert (
            await _error(
                server,
                "POST",
                f"/class/{unknown}/add-student",
                room.teacher.token,
                {"studentId": student_id},
            )
            == CLASS_NOT_FOUND
        )
    for missing in ("0123456789abcdef01234567", "nope", other_teacher.id):
        assert await _error(server, "POST", path, room.teacher.token, {"studentId": missing}) == (
            404,
            "Student not found",
        )


async def test_get_class_and_room_are_for_the_owner_and_enrolled_students_only(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    outsider_student = await server.account("student")
    outsider_teacher = await server.account("teacher")
    for path in (f"/class/{room.class_id}", f"/class/{room.class_id}/room"):
        assert await _error(server, "GET", path) == UNAUTHORIZED
        assert await _error(server, "GET", path, outsider_student.token) == NOT_CLASS_TEACHER
        assert await _error(server, "GET", path, outsider_teacher.token) == NOT_CLASS_TEACHER
    for unknown in ("0123456789abcdef01234567", "zzz"):
        assert (
            await _error(server, "GET", f"/class/{unknown}", room.teacher.token) == CLASS_NOT_FOUND
        )
        assert (
            await _error(server, "GET", f"/class/{unknown}/room", room.teacher.token)
            == CLASS_NOT_FOUND
        )


async def test_the_room_status_follows_the_session(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    path = f"/class/{room.class_id}/room"
    idle = await server.api.call("GET", path, token=room.students[0].token)
    assert idle == {
        "classId": room.class_id,
        "activeRoomId": None,
        "isActive": False,
        "startedAt": None,
        "sessionId": None,
    }
    started = await server.api.start_session(room.teacher, room.class_id)
    live = await server.api.call("GET", path, token=room.students[0].token)
    assert live["isActive"] is True and live["activeRoomId"] == started["roomId"]
    assert live["startedAt"] == started["startedAt"] and live["sessionId"] == started["sessionId"]
    await server.api.end_session(room.teacher, room.class_id)
    assert (await server.api.call("GET", path, token=room.teacher.token))["isActive"] is False


async def test_students_lists_every_student_for_teachers_only(server: RunningServer) -> None:
    teacher = await server.account("teacher")
    assert await server.api.call("GET", "/students", token=teacher.token) == []
    student = await server.account("student", name="Bea")
    listed = await server.api.call("GET", "/students", token=teacher.token)
    assert listed == [{"_id": student.id, "name": "Bea", "email": student.email}]
    assert await _error(server, "GET", "/students", student.token) == TEACHER_ONLY
    assert await _error(server, "GET", "/students") == UNAUTHORIZED


async def test_my_classes_lists_owned_or_enrolled_classes_with_their_live_state(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    for user in (room.teacher, room.students[0]):
        classes = await server.api.call("GET", "/classes", token=user.token)
        assert [(c["_id"], c["isActive"]) for c in classes] == [(room.class_id, True)]
    stranger = await server.account("student")
    assert await server.api.call("GET", "/classes", token=stranger.token) == []


async def test_unknown_routes_and_methods_keep_the_envelope(server: RunningServer) -> None:
    assert await _error(server, "GET", "/no/such/route") == (404, "Not found")
    assert await _error(server, "DELETE", "/auth/login") == (405, "Method not allowed")


async def test_an_oversized_body_is_refused_with_413(server: RunningServer) -> None:
    teacher = await server.account("teacher")
    huge = '{"className": "' + "x" * (200 * 1024) + '"}'
    assert await _error(server, "POST", "/class", teacher.token, huge) == (
        413,
        "Request body too large",
    )


async def test_class_settings_round_trip_and_keep_what_is_left_out(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    student = room.students[0]
    path = f"/class/{room.class_id}"
    settings = f"{path}/settings"
    fresh = await server.api.call("GET", path, token=student.token)
    assert fresh == {
        "_id": room.class_id,
        "className": "Physics",
        "teacherId": room.teacher.id,
        "studentIds": [student.id],
        "policy": {"presentRatio": 0.75, "lateAfterSeconds": 600},
        "allowStudentRecordings": False,
        "allowStudentScreenShare": False,
        "allowStudentUnmute": True,
        "students": fresh["students"],
    }
    shown = {key: value for key, value in fresh.items() if key != "students"}

    token = room.teacher.token
    sharing = await server.api.call(
        "PUT", settings, token=token, body={"allowStudentScreenShare": True}
    )
    assert sharing == {**shown, "allowStudentScreenShare": True}
    recorded = await server.api.call(
        "PUT", settings, token=token, body={"presentRatio": 0.5, "allowStudentRecordings": True}
    )
    assert recorded == {
        **sharing,
        "policy": {"presentRatio": 0.5, "lateAfterSeconds": 600},
        "allowStudentRecordings": True,
    }
    for bad in ("yes", 1, 0, None, [True], {"on": True}):
        body = {"allowStudentScreenShare": bad}
        assert await _error(server, "PUT", settings, token, body) == INVALID, bad
    body = {"allowStudentScreenShare": False}
    assert await _error(server, "PUT", settings, student.token, body) == TEACHER_ONLY
    for viewer in (room.teacher, student):
        assert await server.api.call("GET", path, token=viewer.token) == {
            **recorded,
            "students": fresh["students"],
        }
    stopped = await server.api.call("PUT", settings, token=token, body=body)
    assert stopped == {**recorded, "allowStudentScreenShare": False}
    held = await server.api.call("PUT", settings, token=token, body={"allowStudentUnmute": False})
    assert held == {**stopped, "allowStudentUnmute": False}
    for bad in ("no", 0, None):
        body = {"allowStudentUnmute": bad}
        assert await _error(server, "PUT", settings, token, body) == INVALID, bad

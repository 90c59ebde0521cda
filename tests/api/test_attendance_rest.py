"""``/attendance/start``, ``/attendance/end`` and ``/class/:id/my-attendance``."""

from __future__ import annotations

import re

from .conftest import RunningServer

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def _error(
    server: RunningServer, method: str, path: str, token: str | None = None, body: object = None
) -> tuple[int, str]:
    status, answer = await server.api.request(method, path, token=token, body=body)
    assert answer["success"] is False
    return status, answer["error"]


async def test_starting_a_session_returns_ids_and_a_millisecond_utc_start(
    server: RunningServer,
) -> None:
    room = await server.classroom()
    started = await server.api.start_session(room.teacher, room.class_id)
    assert set(started) == {"classId", "roomId", "sessionId", "startedAt"}
    assert started["classId"] == room.class_id
    assert len(started["roomId"]) == 24 and len(started["sessionId"]) == 24
    assert ISO_MS.match(started["startedAt"])


async def test_a_second_start_while_active_is_a_conflict(server: RunningServer) -> None:
    room = await server.classroom()
    await server.api.start_session(room.teacher, room.class_id)
    assert await _error(
        server, "POST", "/attendance/start", room.teacher.token, {"classId": room.class_id}
    ) == (409, "Attendance session already active for this class")


async def test_start_and_end_check_token_role_body_class_and_owner(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    other_teacher = await server.account("teacher")
    for path in ("/attendance/start", "/attendance/end"):
        body = {"classId": room.class_id}
        assert await _error(server, "POST", path, None, body) == (
            401,
            "Unauthorized, token missing or invalid",
        )
        assert await _error(server, "POST", path, room.students[0].token, body) == (
            403,
            "Forbidden, teacher access required",
        )
        for bad in ({}, {"classId": 12}, {"classId": ""}, "[1]"):
            assert await _error(server, "POST", path, room.teacher.token, bad) == (
                400,
                "Invalid request schema",
            )
        for unknown in ("0123456789abcdef01234567", "missing"):
            assert await _error(server, "POST", path, room.teacher.token, {"classId": unknown}) == (
                404,
                "Class not found",
            )
        assert await _error(server, "POST", path, other_teacher.token, body) == (
            403,
            "Forbidden, not class teacher",
        )


async def test_ending_without_an_active_session_is_a_conflict(server: RunningServer) -> None:
    room = await server.classroom()
    assert await _error(
        server, "POST", "/attendance/end", room.teacher.token, {"classId": room.class_id}
    ) == (409, "No active attendance session")


async def test_ending_marks_everyone_unmarked_absent_and_keeps_history(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=2)
    first, second = room.students
    path = f"/class/{room.class_id}/my-attendance"
    assert await server.api.call("GET", path, token=first.token) == {
        "classId": room.class_id,
        "status": None,
    }

    await server.api.start_session(room.teacher, room.class_id)
    teacher_ws = await server.api.open_socket(room.teacher.token)
    await teacher_ws.send("ATTENDANCE_MARKED", {"studentId": first.id, "status": "present"})
    await teacher_ws.next("ATTENDANCE_MARKED")
    ended = await server.api.end_session(room.teacher, room.class_id)
    assert ended == {"message": "Attendance persisted", "present": 1, "absent": 1, "total": 2}
    done = await teacher_ws.next("DONE")
    assert done == ended
    assert (await server.api.call("GET", path, token=first.token))["status"] == "present"
    assert (await server.api.call("GET", path, token=second.token))["status"] == "absent"

    # A second session gives a new record; the first one is not overwritten.
    await server.api.start_session(room.teacher, room.class_id)
    await teacher_ws.send("ATTENDANCE_MARKED", {"studentId": second.id, "status": "present"})
    await teacher_ws.next("ATTENDANCE_MARKED")
    again = await server.api.end_session(room.teacher, room.class_id)
    assert (again["present"], again["absent"]) == (1, 1)
    assert (await server.api.call("GET", path, token=first.token))["status"] == "absent"
    assert (await server.api.call("GET", path, token=second.token))["status"] == "present"
    await teacher_ws.close()


async def test_my_attendance_is_for_enrolled_students_only(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    outsider = await server.account("student")
    path = f"/class/{room.class_id}/my-attendance"
    assert await _error(server, "GET", path) == (401, "Unauthorized, token missing or invalid")
    assert await _error(server, "GET", path, room.teacher.token) == (
        403,
        "Forbidden, student access required",
    )
    assert await _error(server, "GET", path, outsider.token) == (
        403,
        "Forbidden, not enrolled in class",
    )
    for unknown in ("0123456789abcdef01234567", "x"):
        assert await _error(
            server, "GET", f"/class/{unknown}/my-attendance", room.students[0].token
        ) == (404, "Class not found")

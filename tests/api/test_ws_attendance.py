"""The attendance WebSocket contract, with real sockets against a real server."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from scripts.synthpeer.api_client import ApiFailure

from .conftest import RunningServer


async def test_a_bad_token_gets_an_error_then_the_socket_closes(server: RunningServer) -> None:
    for token in ("", "nonsense"):
        ws = await server.api.open_socket(token)
        error = await ws.next("ERROR")
        assert error == {"message": "Unauthorized or invalid token", "event": None}
        await asyncio.wait_for(ws._reader, 5)
        assert ws.closed


async def test_a_valid_socket_stays_open_and_silent(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    ws = await server.api.open_socket(room.students[0].token)
    assert await ws.quiet(0.3) == []
    assert not ws.closed
    await ws.close()


async def test_marks_are_broadcast_to_the_class_only(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    other = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    await server.api.start_session(other.teacher, other.class_id)
    teacher = await server.api.open_socket(room.teacher.token)
    student = await server.api.open_socket(room.students[0].token, room.class_id)
    outsider = await server.api.open_socket(other.students[0].token)

    mark = {"studentId": room.students[1].id, "status": "present"}
    await teacher.send("ATTENDANCE_MARKED", mark)
    assert await teacher.next("ATTENDANCE_MARKED") == mark
    assert await student.next("ATTENDANCE_MARKED") == mark
    assert await outsider.quiet(0.3) == []
    for ws in (teacher, student, outsider):
        await ws.close()


async def test_today_summary_counts_students_with_a_status(server: RunningServer) -> None:
    room = await server.classroom(students=3)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token)
    student = await server.api.open_socket(room.students[0].token)
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[0].id, "status": "present"})
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[1].id, "status": "absent"})
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[1].id, "status": "present"})
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[2].id, "status": "absent"})
    summary = await teacher.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY")
    assert summary == {"present": 2, "absent": 1, "total": 3}
    assert await student.next("TODAY_SUMMARY") == summary
    for ws in (teacher, student):
        await ws.close()


async def test_my_attendance_answers_only_the_asking_socket(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token)
    first = await server.api.open_socket(room.students[0].token)
    second = await server.api.open_socket(room.students[1].token)
    assert await first.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {
        "status": "not yet updated"
    }
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[0].id, "status": "absent"})
    await first.next("ATTENDANCE_MARKED")
    assert await first.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {"status": "absent"}
    await second.next("ATTENDANCE_MARKED")
    assert await second.quiet(0.3) == []
    for ws in (teacher, first, second):
        await ws.close()


async def test_done_persists_marks_absentees_ends_the_session_and_broadcasts(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=3)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token)
    student = await server.api.open_socket(room.students[2].token)
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[0].id, "status": "present"})
    done = await teacher.request("DONE", {}, "DONE")
    assert done == {"message": "Attendance persisted", "present": 1, "absent": 2, "total": 3}
    assert await student.next("DONE") == done
    status = await server.api.call("GET", f"/class/{room.class_id}/room", token=room.teacher.token)
    assert status["isActive"] is False
    mine = await server.api.call(
        "GET", f"/class/{room.class_id}/my-attendance", token=room.students[2].token
    )
    assert mine["status"] == "absent"
    for ws in (teacher, student):
        await ws.close()


async def test_a_socket_opened_before_the_session_works_once_it_starts(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    teacher = await server.api.open_socket(room.teacher.token)
    student = await server.api.open_socket(room.students[0].token)
    with pytest.raises(ApiFailure, match="No active attendance session"):
        await teacher.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY")
    with pytest.raises(ApiFailure, match="No active attendance session"):
        await student.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE")
    await server.api.start_session(room.teacher, room.class_id)
    assert await student.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {
        "status": "not yet updated"
    }
    assert await teacher.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY") == {
        "present": 0,
        "absent": 0,
        "total": 0,
    }
    for ws in (teacher, student):
        await ws.close()


async def test_errors_are_reported_and_the_socket_stays_open(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    outsider = await server.account("student")
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token)
    student = await server.api.open_socket(room.students[0].token)

    async def error_of(ws: object, raw: str) -> str:
        assert hasattr(ws, "send_raw") and hasattr(ws, "next")
        await ws.send_raw(raw)
        return str((await ws.next("ERROR"))["message"])

    def frame(event: str, data: object = None) -> str:
        return json.dumps({"event": event, "data": data if data is not None else {}})

    for event in ("ATTENDANCE_MARKED", "TODAY_SUMMARY", "DONE"):
        assert await error_of(student, frame(event)) == "Forbidden, teacher event only"
    assert await error_of(teacher, frame("MY_ATTENDANCE")) == "Forbidden, student event only"
    assert await error_of(teacher, frame("NO_SUCH_EVENT")) == "Unknown event"
    for raw in ("not json", "[1,2]", '{"data": {}}', '{"event": 5}', '{"event":"X","data":[1]}'):
        assert await error_of(teacher, raw) == "Invalid message format"
    for data in (
        {},
        {"studentId": room.students[0].id},
        {"studentId": room.students[0].id, "status": "late-ish"},
    ):
        message = await error_of(teacher, frame("ATTENDANCE_MARKED", data))
        assert "studentId" in message and "status" in message
    message = await error_of(
        teacher, frame("ATTENDANCE_MARKED", {"studentId": outsider.id, "status": "present"})
    )
    assert message == "Student not enrolled in class"
    await teacher.ws.send_bytes(b"\x00\x01")
    assert (await teacher.next("ERROR"))["message"] == "Invalid message format"
    # Still alive and working after all of that.
    assert await teacher.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY") == {
        "present": 0,
        "absent": 0,
        "total": 0,
    }
    for ws in (teacher, student):
        await ws.close()


async def test_a_class_id_socket_checks_membership(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    other = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    intruder = await server.api.open_socket(other.teacher.token, room.class_id)
    with pytest.raises(ApiFailure, match="Forbidden, not class teacher"):
        await intruder.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY")
    stranger = await server.api.open_socket(other.students[0].token, room.class_id)
    with pytest.raises(ApiFailure, match="Forbidden, not enrolled in class"):
        await stranger.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE")
    lost = await server.api.open_socket(room.teacher.token, "0123456789abcdef01234567")
    with pytest.raises(ApiFailure, match="Class not found"):
        await lost.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY")
    for ws in (intruder, stranger, lost):
        await ws.close()


async def test_an_oversized_frame_closes_only_that_socket(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token)
    greedy = await server.api.open_socket(room.students[0].token)
    await greedy.send_raw(json.dumps({"event": "MY_ATTENDANCE", "data": {"x": "y" * 70_000}}))
    await asyncio.wait_for(greedy._reader, 5)
    assert greedy.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert await teacher.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY") == {
        "present": 0,
        "absent": 0,
        "total": 0,
    }
    await teacher.close()


async def test_what_changes_while_a_socket_is_open_is_seen_by_its_next_event(
    server: RunningServer,
) -> None:
    # The store's answers are cached (api.store_cache): each change must reach the socket.
    room = await server.classroom(students=1)
    late = await server.account("student")
    mine = await server.api.open_socket(late.token, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token, room.class_id)
    with pytest.raises(ApiFailure, match="Forbidden, not enrolled in class"):
        await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE")
    await server.api.enrol(room.teacher, room.class_id, late.id)
    with pytest.raises(ApiFailure, match="No active attendance session"):
        await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE")

    await server.api.start_session(room.teacher, room.class_id)
    assert await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {"status": "not yet updated"}
    await teacher.send("ATTENDANCE_MARKED", {"studentId": late.id, "status": "absent"})
    await mine.next("ATTENDANCE_MARKED")
    assert await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {"status": "absent"}
    await teacher.send("ATTENDANCE_MARKED", {"studentId": late.id, "status": "present"})
    await mine.next("ATTENDANCE_MARKED")
    assert await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {"status": "present"}
    summary = {"present": 1, "absent": 0, "total": 1}
    assert await teacher.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY") == summary

    await server.api.call(
        "POST", "/attendance/end", token=room.teacher.token, body={"classId": room.class_id}
    )
    with pytest.raises(ApiFailure, match="No active attendance session"):
        await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE")
    await server.api.start_session(room.teacher, room.class_id)  # a new session: no mark yet
    assert await mine.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {"status": "not yet updated"}
    for ws in (mine, teacher):
        await ws.close()

"""Server-initiated pushes (``api.pushes``) with real sockets against a real server: a new
student reaches the teachers' sockets, an enrolment reaches that student's sockets, and a
student's own live and final status reaches that student only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from api.config import Settings
from scripts.synthpeer.api_client import Account, ClassSocket
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

from .conftest import RunningServer, ServerFactory

PUSHES = ("STUDENT_SIGNED_UP", "ENROLLED_IN_CLASS", "MY_ATTENDANCE_UPDATED")


async def pushes_so_far(ws: ClassSocket) -> list[dict[str, Any]]:
    """Every push this socket was sent before now: a request answered after them on the
    same socket (frames to one socket keep their order) marks the point."""
    await ws.send("NO_SUCH_EVENT")
    await ws.next("ERROR", where=lambda data: data["message"] == "Unknown event")
    found = [frame for frame in ws.received if frame["event"] in PUSHES]
    ws.received = [frame for frame in ws.received if frame not in found]
    return found


async def opened(server: RunningServer, token: str, class_id: str | None = None) -> ClassSocket:
    """A class socket the server has taken in: a socket is registered for pushes once its
    token is checked, after the handshake, so a push right after the handshake could miss
    it; an event answered on it means it is registered."""
    ws = await server.api.open_socket(token, class_id)
    assert await pushes_so_far(ws) == []
    return ws


async def test_a_new_student_is_announced_to_every_teacher_socket_only(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    other_teacher = await server.account("teacher")
    teacher_unbound = await opened(server, room.teacher.token)
    teacher_in_class = await opened(server, room.teacher.token, room.class_id)
    other_unbound = await opened(server, other_teacher.token)
    student = await opened(server, room.students[0].token)

    newcomer = await server.account("student", "Carol Newcomer")
    expected = {"student": {"_id": newcomer.id, "name": "Carol Newcomer", "email": newcomer.email}}
    for ws in (teacher_unbound, teacher_in_class, other_unbound):
        assert await pushes_so_far(ws) == [{"event": "STUDENT_SIGNED_UP", "data": expected}]
    assert await pushes_so_far(student) == []

    await server.account("teacher")  # a new teacher is nobody's enrol choice
    for ws in (teacher_unbound, teacher_in_class, other_unbound, student):
        assert await pushes_so_far(ws) == []
    for ws in (teacher_unbound, teacher_in_class, other_unbound, student):
        await ws.close()


async def test_an_enrolment_reaches_every_socket_of_that_student_only(
    server: RunningServer,
) -> None:
    live = await server.classroom(students=1)
    newcomer = live.students[0]
    await server.api.start_session(live.teacher, live.class_id)
    target = await server.api.create_class(live.teacher, "Chemistry")
    bystander = await server.account("student")
    # Opened without a class while another class of theirs is live: by the hub's binding
    # rule it belongs to that class, and it must still hear the new one.
    unbound = await opened(server, newcomer.token)
    bound_elsewhere = await opened(server, newcomer.token, live.class_id)
    others = [
        await opened(server, bystander.token),
        await opened(server, live.teacher.token),
        await opened(server, live.teacher.token, live.class_id),
    ]

    answer = await server.api.enrol(live.teacher, target["_id"], newcomer.id)
    assert answer["studentIds"] == [newcomer.id]
    expected = {
        "class": {
            "_id": target["_id"],
            "className": "Chemistry",
            "teacherId": live.teacher.id,
            "studentIds": [newcomer.id],
            "isActive": False,
        }
    }
    for ws in (unbound, bound_elsewhere):
        assert await pushes_so_far(ws) == [{"event": "ENROLLED_IN_CLASS", "data": expected}]
    for ws in others:
        assert await pushes_so_far(ws) == []

    # Enrolled while the class is live: the push says so, as GET /classes would.
    await server.api.start_session(live.teacher, target["_id"])
    await server.api.enrol(live.teacher, target["_id"], bystander.id)
    pushed = await pushes_so_far(others[0])
    assert [frame["event"] for frame in pushed] == ["ENROLLED_IN_CLASS"]
    assert pushed[0]["data"]["class"]["isActive"] is True
    listed = await server.api.call("GET", "/classes", token=bystander.token)
    assert [item for item in listed if item["_id"] == target["_id"]] == [pushed[0]["data"]["class"]]
    for ws in (unbound, bound_elsewhere, *others):
        await ws.close()


async def test_a_teachers_mark_reaches_the_marked_students_sockets(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=2)
    session = await server.api.start_session(room.teacher, room.class_id)
    teacher = await opened(server, room.teacher.token)
    marked = await opened(server, room.students[0].token)
    marked_unbound = await opened(server, room.students[0].token, room.class_id)
    other = await opened(server, room.students[1].token)

    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[0].id, "status": "absent"})
    expected = {
        "classId": room.class_id,
        "sessionId": session["sessionId"],
        "status": "absent",
        "source": "teacher",
        "final": False,
    }
    for ws in (marked, marked_unbound):
        assert await ws.next("MY_ATTENDANCE_UPDATED") == expected
    assert await pushes_so_far(other) == []
    assert await pushes_so_far(teacher) == []

    # The same status again is no news; a changed one is.
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[0].id, "status": "absent"})
    await teacher.send("ATTENDANCE_MARKED", {"studentId": room.students[0].id, "status": "present"})
    assert await marked.next("MY_ATTENDANCE_UPDATED") == {**expected, "status": "present"}
    assert await pushes_so_far(marked) == []
    for ws in (teacher, marked, marked_unbound, other):
        await ws.close()


# ─────────────────────── with media: presence and the final status ───────────────────────

PeerFactory = Callable[[Account], Awaitable[SyntheticPeer]]


@pytest.fixture
async def media_server(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(replace(settings, ice_addresses=("127.0.0.1",)))


@pytest.fixture
async def peers(media_server: RunningServer) -> AsyncIterator[PeerFactory]:
    made: list[SyntheticPeer] = []

    async def make(account: Account) -> SyntheticPeer:
        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config, video=vp8_clip(), audio=ToneAudioTrack(level_dbov=-20), decode="none"
            )

        peer = SyntheticPeer(media_server.api, account, media)
        made.append(peer)
        await peer.join()
        await peer.wait_connected()
        return peer

    yield make
    for peer in made:
        await peer.close()


async def test_being_in_the_room_pushes_present_and_done_pushes_the_stored_status(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    server = media_server
    room = await server.classroom(students=2)
    joining, staying_out = room.students
    # Nobody can be in the room for all of a session they join after it started, so with a
    # ratio of 1 the provisional "present" of being in the room ends as a stored "absent".
    await server.api.call(
        "PUT",
        f"/class/{room.class_id}/settings",
        token=room.teacher.token,
        body={"presentRatio": 1},
    )
    session = await server.api.start_session(room.teacher, room.class_id)
    teacher = await opened(server, room.teacher.token)
    outside = await opened(server, staying_out.token)
    student = await peers(joining)
    assert student.socket is not None
    live = {
        "classId": room.class_id,
        "sessionId": session["sessionId"],
        "status": "present",
        "source": "presence",
        "final": False,
    }
    assert await student.socket.next("MY_ATTENDANCE_UPDATED") == live
    assert await student.socket.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {
        "status": "present"
    }
    assert await pushes_so_far(outside) == []

    done = await teacher.request("DONE", {}, "DONE")
    assert done == {"message": "Attendance persisted", "present": 0, "absent": 2, "total": 2}
    final = {**live, "status": "absent", "final": True}
    assert await student.socket.next("MY_ATTENDANCE_UPDATED", where=lambda d: d["final"]) == final
    assert await outside.next("MY_ATTENDANCE_UPDATED") == final
    assert await pushes_so_far(student.socket) == []
    assert await pushes_so_far(teacher) == []
    for token in (joining.token, staying_out.token):
        stored = await server.api.call("GET", f"/class/{room.class_id}/my-attendance", token=token)
        assert stored["status"] == "absent"
    for ws in (teacher, outside):
        await ws.close()

"""Raised hands over the class WebSocket, on both stores: a queue in the order hands went
up (``ROOM_JOINED``, ``ROSTER``), the teacher lowering one or all, leaving lowers, every
change in the record, every refusal its documented ``ERROR``."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import WS_TEACHER_EVENT_ONLY
from api.rooms.hands import BAD_LOWER, BAD_RAISED
from api.ws.room_events import NOT_JOINED
from scripts.synthpeer.api_client import ClassSocket

from .conftest import Classroom, RunningServer
from .test_chat import in_room, refusal


async def hand_record(server: RunningServer, room: Classroom) -> list[tuple[str, bool, str]]:
    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    events = await server.services.store.list_activity(live.session.id, ["hand"])
    return [(e.user_id, e.data["raised"], e.data["by"]) for e in events]


async def no_hand_event(socket: ClassSocket) -> None:
    """Nothing about hands came before an ``ERROR`` this socket asks for now (the server
    handles a socket's events in order, and room events are queued before the reply)."""
    await socket.send("HAND", {"raised": "barrier"})
    await socket.error_for("HAND")
    assert not [f for f in socket.received if f.get("event") == "HAND"]


async def test_hands_queue_in_the_order_they_went_up(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    teacher, ann, bob = await in_room(server, room)
    ann_id, bob_id = (s.id for s in room.students)
    await bob.send("HAND", {"raised": True})
    up = await teacher.next("HAND")
    assert set(up) == {"userId", "raised", "at", "by"}
    assert (up["userId"], up["raised"], up["by"]) == (bob_id, True, bob_id)
    await ann.send("HAND", {"raised": True})
    await teacher.next("HAND", where=lambda h: h["userId"] == ann_id)

    for _ in range(2):  # bob heard his own hand and ann's
        await bob.next("HAND")
    await bob.send("HAND", {"raised": True})  # up already: nothing changes, nothing is sent
    await no_hand_event(bob)

    roster = await teacher.request("ROSTER", {}, "ROSTER")
    assert [h["userId"] for h in roster["hands"]] == [bob_id, ann_id]
    assert roster["hands"][0]["at"] == up["at"]
    late = await server.api.open_socket(room.teacher.token, room.class_id)
    joined = await late.request("JOIN_ROOM", {}, "ROOM_JOINED")  # the teacher, again
    assert joined["hands"] == roster["hands"]

    await bob.send("HAND", {"raised": False})
    down = await ann.next("HAND", where=lambda h: not h["raised"])
    assert (down["userId"], down["by"]) == (bob_id, bob_id)
    assert await hand_record(server, room) == [
        (bob_id, True, bob_id),
        (ann_id, True, ann_id),
        (bob_id, False, bob_id),
    ]


async def test_the_teacher_lowers_one_hand_or_all_of_them(server: RunningServer) -> None:
    room = await server.classroom(students=3)
    teacher, *students = await in_room(server, room)
    ids = [s.id for s in room.students]
    for socket, user in zip(students, ids, strict=True):
        await socket.send("HAND", {"raised": True})

        def raised_by(hand: dict[str, Any], me: str = user) -> bool:
            return bool(hand["userId"] == me and hand["raised"])

        await teacher.next("HAND", where=raised_by)
    await teacher.send("HAND_LOWER", {"userId": ids[1]})
    lowered = await students[1].next("HAND", where=lambda h: not h["raised"])
    assert (lowered["userId"], lowered["by"]) == (ids[1], room.teacher.id)

    await teacher.send("HAND_LOWER", {"userId": ids[1]})  # down already: nothing
    await teacher.send("HAND_LOWER", {"all": True})
    seen = [await students[2].next("HAND", where=lambda h: not h["raised"]) for _ in range(3)]
    assert sorted(h["userId"] for h in seen) == sorted(ids)
    roster = await teacher.request("ROSTER", {}, "ROSTER")
    assert roster["hands"] == []
    record = await hand_record(server, room)
    assert sorted(r for r in record if not r[1]) == sorted(
        (user, False, room.teacher.id) for user in ids
    )


async def test_leaving_the_room_lowers_the_hand(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    teacher, ann, _ = await in_room(server, room)
    ann_id = room.students[0].id
    await ann.send("HAND", {"raised": True})
    await teacher.next("HAND")
    await ann.send("LEAVE_ROOM", {})
    await teacher.next("PEER_LEFT", where=lambda p: p["userId"] == ann_id)
    roster = await teacher.request("ROSTER", {}, "ROSTER")
    assert roster["hands"] == []
    again = await ann.request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert again["hands"] == []

    async def recorded() -> bool:
        return (ann_id, False, ann_id) in await hand_record(server, room)

    for _ in range(100):  # written after the leave, which never waits for the store
        if await recorded():
            break
        await ann.quiet(0.05)
    assert await hand_record(server, room) == [(ann_id, True, ann_id), (ann_id, False, ann_id)]


@pytest.mark.parametrize(
    ("event", "data", "expected", "who"),
    [
        ("HAND", {}, BAD_RAISED, "student"),
        ("HAND", {"raised": "yes"}, BAD_RAISED, "student"),
        ("HAND", {"raised": 1}, BAD_RAISED, "student"),
        ("HAND_LOWER", {"all": True}, WS_TEACHER_EVENT_ONLY, "student"),
        ("HAND_LOWER", {}, BAD_LOWER, "teacher"),
        ("HAND_LOWER", {"userId": "x"}, BAD_LOWER, "teacher"),
        ("HAND_LOWER", {"all": "yes"}, BAD_LOWER, "teacher"),
        ("HAND_LOWER", {"all": True, "userId": "0" * 24}, BAD_LOWER, "teacher"),
    ],
)
async def test_hand_events_refuse_what_they_cannot_do(
    server: RunningServer, event: str, data: dict[str, Any], expected: str, who: str
) -> None:
    room = await server.classroom(students=1)
    teacher, ann = await in_room(server, room)
    socket = teacher if who == "teacher" else ann
    assert await refusal(socket, event, data) == expected
    assert await hand_record(server, room) == []


async def test_hands_need_the_room(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token, room.class_id)
    student = await server.api.open_socket(room.students[0].token, room.class_id)
    assert await refusal(student, "HAND", {"raised": True}) == NOT_JOINED
    assert await refusal(teacher, "HAND_LOWER", {"all": True}) == NOT_JOINED

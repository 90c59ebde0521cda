"""Polls over the class WebSocket, on both stores: the teacher asks, students vote once
and may change their vote until the end, the teacher sees the counts live, everyone hears
the result, a late joiner sees the open poll, every step is in the record; anonymous polls
keep who voted but not what; every refusal is its documented ``ERROR``."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import WS_STUDENT_EVENT_ONLY, WS_TEACHER_EVENT_ONLY
from api.rooms.polls import (
    BAD_ANONYMOUS,
    BAD_OPTION,
    BAD_OPTIONS,
    BAD_POLL_ID,
    BAD_QUESTION,
    NO_SUCH_POLL,
    POLL_ENDED,
    POLL_OPEN,
)
from api.ws.room_events import NOT_JOINED

from .conftest import Classroom, RunningServer
from .test_chat import in_room, refusal

QUESTION = {"question": "Which is a prime?", "options": ["4", "7", "9"]}


async def record(server: RunningServer, room: Classroom) -> list[tuple[str, str, dict[str, Any]]]:
    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    kinds = ["poll_started", "poll_vote", "poll_ended"]
    events = await server.services.store.list_activity(live.session.id, kinds)
    return [(e.kind, e.user_id, e.data) for e in events]


async def test_a_poll_from_question_to_result(server: RunningServer) -> None:
    room = await server.classroom(students=3)
    teacher, ann, bob, cat = await in_room(server, room)
    await teacher.send("POLL_START", QUESTION)
    started = await ann.next("POLL_STARTED")
    assert set(started) == {"pollId", "question", "options", "anonymous", "at"}
    assert (started["options"], started["anonymous"]) == (["4", "7", "9"], False)
    assert await teacher.next("POLL_STARTED") == started
    poll = started["pollId"]

    for socket, option in ((ann, 1), (bob, 0)):
        voted = await socket.request("POLL_VOTE", {"pollId": poll, "option": option}, "POLL_VOTED")
        assert voted == {"pollId": poll, "option": option}
    counts = await teacher.next("POLL_COUNTS", where=lambda c: c["voters"] == 2)
    assert counts == {"pollId": poll, "counts": [1, 1, 0], "voters": 2}
    await bob.request("POLL_VOTE", {"pollId": poll, "option": 1}, "POLL_VOTED")  # changed
    await teacher.next("POLL_COUNTS", where=lambda c: c["counts"] == [0, 2, 0])

    late = await server.api.open_socket(room.students[2].token, room.class_id)
    joined = await late.request("JOIN_ROOM", {}, "ROOM_JOINED")  # cat again, not voted yet
    assert joined["poll"] == {**started, "myVote": None}
    assert "counts" not in joined["poll"]  # students see no counts while it is open
    await cat.close()

    await teacher.send("POLL_END", {"pollId": poll})
    result = await bob.next("POLL_RESULT")
    assert {k: result[k] for k in ("pollId", "counts", "voters", "question")} == {
        "pollId": poll,
        "counts": [0, 2, 0],
        "voters": 2,
        "question": QUESTION["question"],
    }
    assert await late.next("POLL_RESULT") == result
    again = await ann.request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert again["poll"] is None
    assert await refusal(ann, "POLL_VOTE", {"pollId": poll, "option": 0}) == POLL_ENDED

    ids = {s.id: n for s, n in zip(room.students, ("ann", "bob", "cat"), strict=True)}
    assert [
        (kind, ids.get(user, "teacher"), data.get("option"))
        for kind, user, data in await record(server, room)
    ] == [
        ("poll_started", "teacher", None),
        ("poll_vote", "ann", 1),
        ("poll_vote", "bob", 0),
        ("poll_vote", "bob", 1),
        ("poll_ended", "teacher", None),
    ]
    assert (await record(server, room))[-1][2] == {"pollId": poll, "counts": [0, 2, 0]}


async def test_an_anonymous_poll_records_who_voted_not_what(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    teacher, ann = await in_room(server, room)
    await teacher.send("POLL_START", {**QUESTION, "anonymous": True})
    poll = (await ann.next("POLL_STARTED"))["pollId"]
    await ann.request("POLL_VOTE", {"pollId": poll, "option": 2}, "POLL_VOTED")
    await teacher.next("POLL_COUNTS")
    await teacher.send("POLL_END", {"pollId": poll})
    assert (await ann.next("POLL_RESULT"))["counts"] == [0, 0, 1]
    votes = [data for kind, _, data in await record(server, room) if kind == "poll_vote"]
    assert votes == [{"pollId": poll}]


async def test_one_poll_at_a_time_and_only_the_teacher_runs_it(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    teacher, ann = await in_room(server, room)
    assert await refusal(ann, "POLL_START", QUESTION) == WS_TEACHER_EVENT_ONLY
    await teacher.send("POLL_START", QUESTION)
    poll = (await ann.next("POLL_STARTED"))["pollId"]
    assert await refusal(teacher, "POLL_START", QUESTION) == POLL_OPEN
    assert await refusal(teacher, "POLL_VOTE", {"pollId": poll, "option": 0}) == (
        WS_STUDENT_EVENT_ONLY
    )
    assert await refusal(ann, "POLL_END", {"pollId": poll}) == WS_TEACHER_EVENT_ONLY
    unknown = {"pollId": "0" * 24}
    assert await refusal(teacher, "POLL_END", unknown) == NO_SUCH_POLL
    assert await refusal(ann, "POLL_VOTE", {**unknown, "option": 0}) == NO_SUCH_POLL
    await teacher.send("POLL_END", {"pollId": poll})
    await ann.next("POLL_RESULT")
    assert await refusal(teacher, "POLL_END", {"pollId": poll}) == POLL_ENDED


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"options": ["a", "b"]}, BAD_QUESTION),
        ({"question": "  ", "options": ["a", "b"]}, BAD_QUESTION),
        ({"question": "q" * 501, "options": ["a", "b"]}, BAD_QUESTION),
        ({"question": "q"}, BAD_OPTIONS),
        ({"question": "q", "options": ["only one"]}, BAD_OPTIONS),
        ({"question": "q", "options": [str(n) for n in range(11)]}, BAD_OPTIONS),
        ({"question": "q", "options": ["a", "a "]}, BAD_OPTIONS),
        ({"question": "q", "options": ["a", ""]}, BAD_OPTIONS),
        ({"question": "q", "options": ["a", 2]}, BAD_OPTIONS),
        ({"question": "q", "options": ["a", "b" * 201]}, BAD_OPTIONS),
        ({"question": "q", "options": {"a": 1, "b": 2}}, BAD_OPTIONS),
        ({"question": "q", "options": ["a", "b"], "anonymous": "yes"}, BAD_ANONYMOUS),
    ],
)
async def test_a_poll_that_is_not_well_formed_is_refused(
    server: RunningServer, data: dict[str, Any], expected: str
) -> None:
    room = await server.classroom(students=0)
    (teacher,) = await in_room(server, room)
    assert await refusal(teacher, "POLL_START", data) == expected
    assert await record(server, room) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"pollId": None, "option": 0}, BAD_POLL_ID),
        ({"pollId": "x", "option": 0}, BAD_POLL_ID),
        ({"option": None}, BAD_OPTION),
        ({"option": "1"}, BAD_OPTION),
        ({"option": True}, BAD_OPTION),
        ({"option": 1.0}, BAD_OPTION),
        ({"option": 3}, BAD_OPTION),
        ({"option": -1}, BAD_OPTION),
    ],
)
async def test_a_vote_that_is_not_well_formed_is_refused(
    server: RunningServer, data: dict[str, Any], expected: str
) -> None:
    room = await server.classroom(students=1)
    teacher, ann = await in_room(server, room)
    await teacher.send("POLL_START", QUESTION)
    poll = (await ann.next("POLL_STARTED"))["pollId"]
    body = {k: v for k, v in {"pollId": poll, **data}.items() if not (k == "pollId" and v is None)}
    assert await refusal(ann, "POLL_VOTE", body) == expected
    assert [kind for kind, _, _ in await record(server, room)] == ["poll_started"]


async def test_polls_need_the_room(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token, room.class_id)
    student = await server.api.open_socket(room.students[0].token, room.class_id)
    assert await refusal(teacher, "POLL_START", QUESTION) == NOT_JOINED
    assert await refusal(student, "POLL_VOTE", {"pollId": "0" * 24, "option": 0}) == NOT_JOINED

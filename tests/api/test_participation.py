"""The participation record of a session (JSON and CSV), on both stores: every student's
attendance with its evidence, what they did in the room, the activity score as documented
(BigBlueButton's five metrics, camera time for reactions), who may read it, and what a
student sees of their own in my-history."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import NOT_CLASS_TEACHER, TEACHER_ONLY
from api.ids import ClassId, RoomId, SessionId, UserId
from api.models import AttendanceSession, new_activity
from api.participation import SCORE_METRICS, activity_scores, tally_activity
from api.routes.report_routes import PARTICIPATION_CSV_COLUMNS
from api.timeutil import iso_ms

from .conftest import RunningServer
from .test_chat import in_room

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_activity_score_is_five_metrics_of_two_points_scaled_to_the_top() -> None:
    rows: list[dict[str, Any]] = [
        dict.fromkeys(SCORE_METRICS, 0.0),
        {
            "talkSeconds": 30,
            "cameraSeconds": 600,
            "chatMessages": 4,
            "handsRaised": 1,
            "pollVotes": 2,
        },
        {
            "talkSeconds": 60,
            "cameraSeconds": 300,
            "chatMessages": 2,
            "handsRaised": 0,
            "pollVotes": 2,
        },
    ]
    # Top per metric: talk 60, camera 600, chat 4, hands 1, polls 2.
    assert activity_scores(rows) == [0.0, 1.0 + 2.0 + 2.0 + 2.0 + 2.0, 2.0 + 1.0 + 1.0 + 0.0 + 2.0]
    assert activity_scores([dict.fromkeys(SCORE_METRICS, 0)]) == [0.0]  # nobody did anything
    assert activity_scores([]) == []


async def test_a_session_participation_from_room_to_record(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    teacher, ann, bob = await in_room(server, room)
    ann_id, bob_id = (s.id for s in room.students)
    for text in ("one", "two", "three"):
        await ann.send("CHAT", {"text": text})
        await teacher.next("CHAT")
    await bob.send("CHAT", {"text": "hi"})
    said = await teacher.next("CHAT")
    await teacher.send("CHAT_DELETE", {"messageId": said["messageId"]})
    await bob.send("HAND", {"raised": True})
    await teacher.next("HAND")
    await teacher.send("POLL_START", {"question": "Ready?", "options": ["yes", "no"]})
    poll = (await ann.next("POLL_STARTED"))["pollId"]
    await ann.request("POLL_VOTE", {"pollId": poll, "option": 0}, "POLL_VOTED")
    await ann.request("POLL_VOTE", {"pollId": poll, "option": 1}, "POLL_VOTED")  # one poll
    await teacher.send("POLL_END", {"pollId": poll})
    await ann.next("POLL_RESULT")
    await teacher.send("MODERATE", {"userId": bob_id, "action": "mute"})
    await bob.next("MODERATED")

    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    path = f"/class/{room.class_id}/sessions/{live.session.id}/participation"
    during = await server.api.call("GET", path, token=room.teacher.token)
    assert during["isActive"] is True and during["polls"][0]["counts"] == [0, 1]
    rows = {row["studentId"]: row for row in during["students"]}
    assert set(rows) == {ann_id, bob_id}
    ann_row, bob_row = rows[ann_id], rows[bob_id]
    assert (ann_row["chatMessages"], ann_row["handsRaised"], ann_row["pollVotes"]) == (3, 0, 1)
    assert (bob_row["chatMessages"], bob_row["chatDeleted"], bob_row["handsRaised"]) == (1, 1, 1)
    assert [m["action"] for m in bob_row["moderation"]] == ["mute"]
    assert len(ann_row["chatAt"]) == 3 and len(bob_row["handsAt"]) == 1
    assert during["scoreFormula"].startswith("sum over talkSeconds")
    # No media here: talk and camera are 0 for both; chat (3 vs 1), hands (0 vs 1), polls.
    assert ann_row["activityScore"] == round(2.0 + 0.0 + 2.0, 1)
    assert bob_row["activityScore"] == round(2.0 / 3 + 2.0, 1)

    await server.api.end_session(room.teacher, room.class_id)
    final = await server.api.call("GET", path, token=room.teacher.token)
    assert final["isActive"] is False
    assert [r["activityScore"] for r in final["students"]] == [
        r["activityScore"] for r in during["students"]
    ]
    status, kind, text = await server.api.text(path + ".csv", token=room.teacher.token)
    assert (status, kind) == (200, "text/csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == list(PARTICIPATION_CSV_COLUMNS)
    by_id = {r["studentId"]: r for r in table}
    assert by_id[bob_id]["moderation"] == "mute" and by_id[ann_id]["chatMessages"] == "3"

    mine = await server.api.call(
        "GET", f"/class/{room.class_id}/my-history", token=room.students[0].token
    )
    assert [(h["chatMessages"], h["pollVotes"], h["activityScore"]) for h in mine] == [
        (3, 1, ann_row["activityScore"])
    ]
    assert "moderation" not in mine[0] and "chatAt" not in mine[0]


async def test_only_the_class_teacher_reads_participation(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    session = await server.api.start_session(room.teacher, room.class_id)
    path = f"/class/{room.class_id}/sessions/{session['sessionId']}/participation"
    stranger = await server.account("teacher")
    for token, error in (
        (room.students[0].token, TEACHER_ONLY),
        (stranger.token, NOT_CLASS_TEACHER),
    ):
        for url in (path, path + ".csv"):
            status, answer = await server.api.request("GET", url, token=token)
            assert (status, answer["error"]) == (403, error)
    status, answer = await server.api.request(
        "GET", path.replace(session["sessionId"], "0" * 24), token=room.teacher.token
    )
    assert (status, answer["error"]) == (404, "Session not found")


def test_camera_and_talking_marks_become_spans_an_open_one_ending_in_none() -> None:
    session = AttendanceSession(
        id=SessionId("s"),
        class_id=ClassId("c"),
        room_id=RoomId("r"),
        teacher_id=UserId("t"),
        started_at=T0,
    )
    ann = UserId("ann")

    def at(second: int) -> datetime:
        return T0 + timedelta(seconds=second)

    events = [
        new_activity(session, ann, "camera", {"on": True}, at(1)),
        new_activity(session, ann, "talking", {"on": True}, at(2)),
        new_activity(session, ann, "talking", {"on": False}, at(4)),
        new_activity(session, ann, "talking", {"on": False}, at(5)),  # a stray end: ignored
        new_activity(session, ann, "camera", {"on": False}, at(9)),
        new_activity(session, ann, "camera", {"on": True}, at(12)),
        new_activity(session, ann, "camera", {"on": True}, at(13)),  # already on: one span
    ]
    public = tally_activity(events)[ann].public()
    iso = [iso_ms(at(s)) for s in (1, 2, 4, 9, 12)]
    assert public["cameraSpans"] == [[iso[0], iso[3]], [iso[4], None]]
    assert public["talkSpans"] == [[iso[1], iso[2]]]
    assert public["chatMessages"] == public["handsRaised"] == 0  # marks are not activity counts


def test_a_deleted_message_counts_for_its_author_not_the_teacher() -> None:
    from datetime import UTC, datetime

    from api.ids import ClassId, SessionId
    from api.models import ActivityEvent

    at = datetime(2026, 12, 7, tzinfo=UTC)

    def event(kind: Any, user: str, **data: Any) -> ActivityEvent:
        return ActivityEvent(
            f"{kind}{user}{len(data)}", SessionId("s"), ClassId("c"), UserId(user), kind, at, data
        )

    tallies = tally_activity(
        [
            event("chat", "ann"),
            ActivityEvent("m2", SessionId("s"), ClassId("c"), UserId("bob"), "chat", at, {}),
            event("chat_deleted", "teacher", messageId="m2"),
            event("hand", "ann", raised=True, by="ann"),
            event("hand", "ann", raised=False, by="teacher"),
            event("poll_vote", "ann", pollId="p1"),
            event("poll_vote", "ann", pollId="p1", option=1),
        ]
    )
    assert set(tallies) == {UserId("ann"), UserId("bob")}
    ann, bob = tallies[UserId("ann")], tallies[UserId("bob")]
    assert (ann.chat_messages, ann.hands_raised, len(ann.polls_voted)) == (1, 1, 1)
    assert (bob.chat_messages, bob.chat_deleted) == (1, 1)

"""A student's live status (``MY_ATTENDANCE``) is `session_report`'s, taken the short way."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from api.attendance import live_status_of
from api.ids import ClassId, RoomId, SessionId, UserId
from api.models import AttendanceSession, ClassRecord, PresenceEvent, PresenceKind
from api.presence.report import session_report

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
GRACE = timedelta(seconds=15)
STUDENT = UserId("b" * 24)
SESSION = AttendanceSession(
    id=SessionId("c" * 24),
    class_id=ClassId("a" * 24),
    room_id=RoomId("room"),
    teacher_id=UserId("d" * 24),
    started_at=START,
)
CLASS = ClassRecord(
    id=SESSION.class_id,
    class_name="Physics",
    teacher_id=SESSION.teacher_id,
    student_ids=(STUDENT,),
    created_at=START,
)


def _events(rng: random.Random) -> list[PresenceEvent]:
    # Around the start and the moment asked about, with repeats and zero-length stays.
    at = START + timedelta(seconds=rng.randint(-60, 30))
    events = []
    for _ in range(rng.randint(0, 8)):
        at += timedelta(seconds=rng.choice([0, 0, 1, 5, 14, 15, 16, 40]))
        kind: PresenceKind = rng.choice(["connected", "connected", "disconnected"])
        events.append(
            PresenceEvent(
                session_id=SESSION.id, class_id=CLASS.id, user_id=STUDENT, kind=kind, at=at
            )
        )
    return events


def test_the_short_way_agrees_with_the_report() -> None:
    rng = random.Random(17)
    for _ in range(5000):
        events = _events(rng)
        until = START + timedelta(seconds=rng.randint(-10, 120))
        expected = session_report(
            SESSION, CLASS.policy, [STUDENT], events, (), (), until=until, grace=GRACE, final=False
        )[0].status
        assert live_status_of(SESSION, CLASS, STUDENT, events, until=until, grace=GRACE) == (
            expected
        ), (events, until)

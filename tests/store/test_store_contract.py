"""The behaviour every Store backend must share, run against each of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.errors import (
    CLASS_NOT_FOUND,
    EMAIL_EXISTS,
    NO_ACTIVE_SESSION,
    SESSION_ALREADY_ACTIVE,
    STUDENT_NOT_FOUND,
    Conflict,
    NotFound,
)
from api.ids import SessionId, UserId, is_object_id, new_id
from api.models import (
    AttendanceMark,
    AttendanceSession,
    AttendanceStatus,
    Role,
    SessionSummary,
    User,
)
from api.store import Store
from api.store.rules import SESSION_NOT_FOUND, TEACHER_NOT_FOUND
from tests.store.conftest import Backend

T0 = datetime(2026, 11, 26, 23, 1, 4, 123000, tzinfo=UTC)
SUMMARY = SessionSummary(present=2, absent=1, total=3, late=1)


def malformed_ids() -> list[str]:
    return ["", "nope", "z" * 24, "a" * 23, "a" * 25, "' OR 1=1 --"]


_counter = iter(range(1_000_000))


async def make_user(
    store: Store,
    role: Role = "student",
    *,
    email: str | None = None,
    password_hash: str | None = None,
    external_id: str | None = None,
) -> User:
    number = next(_counter)
    return await store.create_user(
        name=f"{role} {number}",
        email=email or f"{role}{number}@school.test",
        role=role,
        password_hash=password_hash,
        external_id=external_id,
    )


async def start(
    store: Store, class_id: str, teacher_id: str, at: datetime = T0
) -> AttendanceSession:
    return await store.start_session(class_id=class_id, teacher_id=teacher_id, started_at=at)


def mark(
    session: AttendanceSession,
    student: User,
    status: AttendanceStatus = "present",
    at: datetime = T0,
) -> AttendanceMark:
    return AttendanceMark(
        session_id=session.id,
        class_id=session.class_id,
        student_id=student.id,
        status=status,
        source="teacher",
        marked_at=at,
        marked_by=session.teacher_id,
    )


# -- users ---------------------------------------------------------------------


async def test_a_new_user_gets_a_24_hex_id_and_a_lowercased_email(store: Store) -> None:
    user = await store.create_user(name="Ada", email="Ada@School.TEST", role="teacher")
    assert is_object_id(user.id)
    assert user.email == "ada@school.test"
    assert await store.get_user(user.id) == user


async def test_an_email_taken_in_another_case_is_a_conflict(store: Store) -> None:
    await make_user(store, email="grace@school.test")
    with pytest.raises(Conflict) as caught:
        await make_user(store, email="GRACE@school.test")
    assert caught.value.message == EMAIL_EXISTS


async def test_users_are_found_by_email_in_any_case_and_by_external_id(store: Store) -> None:
    local = await make_user(store, "teacher", email="Lin@school.test", password_hash="scrypt$x")
    remote = await make_user(store, email="kim@school.test", external_id="auth0|42")
    assert await store.get_user_by_email("LIN@SCHOOL.TEST") == local
    assert local.password_hash == "scrypt$x" and local.external_id is None
    assert await store.get_user_by_external_id("auth0|42") == remote
    assert await store.get_user_by_email("nobody@school.test") is None
    assert await store.get_user_by_external_id("auth0|43") is None


@pytest.mark.parametrize("user_id", [*malformed_ids(), new_id()])
async def test_unknown_and_malformed_user_ids_read_as_none(store: Store, user_id: str) -> None:
    await make_user(store)
    assert await store.get_user(user_id) is None


async def test_an_id_in_uppercase_is_not_the_same_id(store: Store) -> None:
    user = await make_user(store)
    assert await store.get_user(user.id.upper()) is None


async def test_users_are_listed_by_role_oldest_first(store: Store) -> None:
    first = await make_user(store, "student")
    teacher = await make_user(store, "teacher")
    second = await make_user(store, "student")
    assert await store.list_users("student") == [first, second]
    assert await store.list_users("teacher") == [teacher]


# -- classes -------------------------------------------------------------------


async def test_a_new_class_has_no_students_and_is_found_by_id(store: Store) -> None:
    teacher = await make_user(store, "teacher")
    created = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    assert is_object_id(created.id)
    assert created.student_ids == ()
    assert await store.get_class(created.id) == created


@pytest.mark.parametrize("class_id", [*malformed_ids(), new_id()])
async def test_unknown_and_malformed_class_ids_read_as_none(store: Store, class_id: str) -> None:
    assert await store.get_class(class_id) is None
    assert await store.get_active_session(class_id) is None
    assert await store.latest_ended_session(class_id) is None
    assert await store.list_sessions(class_id) == []


async def test_a_class_for_an_unknown_teacher_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as caught:
        await store.create_class(class_name="Physics", teacher_id=new_id())
    assert caught.value.message == TEACHER_NOT_FOUND


async def test_enrolling_twice_keeps_one_entry_and_the_enrolment_order(store: Store) -> None:
    teacher = await make_user(store, "teacher")
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    students = [await make_user(store) for _ in range(3)]
    for student in [students[2], students[0], students[1], students[0], students[2]]:
        updated = await store.add_student(cls.id, student.id)
    expected = (students[2].id, students[0].id, students[1].id)
    assert updated.student_ids == expected
    stored = await store.get_class(cls.id)
    assert stored is not None and stored.student_ids == expected


async def test_concurrent_enrolments_all_land_once(store: Store) -> None:
    teacher = await make_user(store, "teacher")
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    students = [await make_user(store) for _ in range(5)]
    await asyncio.gather(*(store.add_student(cls.id, s.id) for s in students + students))
    stored = await store.get_class(cls.id)
    assert stored is not None
    assert sorted(stored.student_ids) == sorted(s.id for s in students)


@pytest.mark.parametrize("class_id", ["nope", new_id()])
async def test_enrolling_into_an_unknown_class_is_not_found(store: Store, class_id: str) -> None:
    student = await make_user(store)
    with pytest.raises(NotFound) as caught:
        await store.add_student(class_id, student.id)
    assert caught.value.message == CLASS_NOT_FOUND


@pytest.mark.parametrize("student_id", ["nope", new_id()])
async def test_enrolling_an_unknown_student_is_not_found(store: Store, student_id: str) -> None:
    teacher = await make_user(store, "teacher")
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    with pytest.raises(NotFound) as caught:
        await store.add_student(cls.id, student_id)
    assert caught.value.message == STUDENT_NOT_FOUND


async def test_classes_are_listed_for_their_teacher_and_their_students(store: Store) -> None:
    ada, lin = await make_user(store, "teacher"), await make_user(store, "teacher")
    kim, sam = await make_user(store), await make_user(store)
    physics = await store.create_class(class_name="Physics", teacher_id=ada.id)
    maths = await store.create_class(class_name="Maths", teacher_id=lin.id)
    art = await store.create_class(class_name="Art", teacher_id=ada.id)
    physics = await store.add_student(physics.id, kim.id)
    art = await store.add_student(art.id, kim.id)
    maths = await store.add_student(maths.id, sam.id)
    assert await store.list_classes_for_teacher(ada.id) == [physics, art]
    assert await store.list_classes_for_teacher(lin.id) == [maths]
    assert await store.list_classes_for_student(kim.id) == [physics, art]
    assert await store.list_classes_for_student(sam.id) == [maths]
    assert await store.list_classes_for_student(ada.id) == []
    assert await store.list_classes_for_teacher(new_id()) == []


# -- attendance sessions ---------------------------------------------------------


async def class_with_teacher(store: Store) -> tuple[User, str]:
    teacher = await make_user(store, "teacher")
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    return teacher, cls.id


async def test_a_started_session_is_the_active_one_of_its_class(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    session = await start(store, class_id, teacher.id)
    assert is_object_id(session.id) and is_object_id(session.room_id)
    assert session.is_active and session.summary is None
    assert await store.get_session(session.id) == session
    assert await store.get_active_session(class_id) == session


async def test_starting_a_second_session_in_a_class_is_a_conflict(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    first = await start(store, class_id, teacher.id)
    with pytest.raises(Conflict) as caught:
        await start(store, class_id, teacher.id, T0 + timedelta(minutes=1))
    assert caught.value.message == SESSION_ALREADY_ACTIVE
    assert await store.list_sessions(class_id) == [first]


async def test_concurrent_starts_let_exactly_one_win(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    results = await asyncio.gather(
        *(start(store, class_id, teacher.id) for _ in range(4)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, AttendanceSession)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not winners[0])
    assert await store.get_active_session(class_id) == winners[0]


async def test_a_session_in_an_unknown_class_is_not_found(store: Store) -> None:
    teacher = await make_user(store, "teacher")
    with pytest.raises(NotFound) as caught:
        await start(store, new_id(), teacher.id)
    assert caught.value.message == CLASS_NOT_FOUND


async def test_ending_a_session_keeps_it_with_its_summary(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    session = await start(store, class_id, teacher.id)
    ended = await store.end_session(session.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    assert ended.ended_at == T0 + timedelta(hours=1) and ended.summary == SUMMARY
    assert await store.get_session(session.id) == ended
    assert await store.get_active_session(class_id) is None


async def test_a_new_session_can_start_after_the_last_one_ended(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    first = await start(store, class_id, teacher.id)
    await store.end_session(first.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    second = await start(store, class_id, teacher.id, T0 + timedelta(days=1))
    assert second.id != first.id and second.room_id != first.room_id
    assert await store.get_active_session(class_id) == second


async def test_ending_a_session_twice_is_a_conflict(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    session = await start(store, class_id, teacher.id)
    ended = await store.end_session(session.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    with pytest.raises(Conflict) as caught:
        await store.end_session(session.id, ended_at=T0 + timedelta(hours=2), summary=SUMMARY)
    assert caught.value.message == NO_ACTIVE_SESSION
    assert await store.get_session(session.id) == ended


@pytest.mark.parametrize("session_id", ["nope", new_id()])
async def test_ending_an_unknown_session_is_not_found(store: Store, session_id: str) -> None:
    with pytest.raises(NotFound) as caught:
        await store.end_session(session_id, ended_at=T0, summary=SUMMARY)
    assert caught.value.message == SESSION_NOT_FOUND


async def test_a_placed_session_names_its_node_until_it_ends_and_after(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    session = await start(store, class_id, teacher.id)
    assert session.node_id is None
    await store.place_session(session.id, "node-a")
    await store.place_session(session.id, "node-b")  # placed again after node-a died
    active = await store.get_active_session(class_id)
    assert active is not None and active.node_id == "node-b"
    ended = await store.end_session(session.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    assert ended.node_id == "node-b" and await store.get_session(session.id) == ended
    with pytest.raises(Conflict) as caught:  # an ended session's room is nowhere
        await store.place_session(session.id, "node-c")
    assert caught.value.message == NO_ACTIVE_SESSION
    assert (await store.list_sessions(class_id))[0].node_id == "node-b"


@pytest.mark.parametrize("session_id", ["nope", new_id()])
async def test_placing_an_unknown_session_is_not_found(store: Store, session_id: str) -> None:
    with pytest.raises(NotFound) as caught:
        await store.place_session(session_id, "node-a")
    assert caught.value.message == SESSION_NOT_FOUND


@pytest.mark.parametrize("session_id", [*malformed_ids(), new_id()])
async def test_unknown_and_malformed_session_ids_read_as_none(
    store: Store, session_id: str
) -> None:
    assert await store.get_session(session_id) is None
    assert await store.list_marks(session_id) == []
    assert await store.get_mark(session_id, new_id()) is None


async def test_sessions_are_listed_newest_first(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    _, other_class = await class_with_teacher(store)
    sessions = []
    for day in range(3):
        session = await start(store, class_id, teacher.id, T0 + timedelta(days=day))
        sessions.append(session)
        if day < 2:
            end = T0 + timedelta(days=day, hours=1)
            sessions[-1] = await store.end_session(session.id, ended_at=end, summary=SUMMARY)
    await start(store, other_class, teacher.id)
    assert await store.list_sessions(class_id) == sessions[::-1]


async def test_the_latest_ended_session_ignores_the_active_one(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    assert await store.latest_ended_session(class_id) is None
    older = await start(store, class_id, teacher.id, T0)
    await store.end_session(older.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    newer = await start(store, class_id, teacher.id, T0 + timedelta(days=1))
    newer_end = T0 + timedelta(days=1, hours=1)
    newer = await store.end_session(newer.id, ended_at=newer_end, summary=SUMMARY)
    await start(store, class_id, teacher.id, T0 + timedelta(days=2))
    assert await store.latest_ended_session(class_id) == newer


async def test_active_sessions_are_listed_across_classes(store: Store) -> None:
    teacher, physics = await class_with_teacher(store)
    _, maths = await class_with_teacher(store)
    _, art = await class_with_teacher(store)
    first = await start(store, physics, teacher.id, T0)
    second = await start(store, maths, teacher.id, T0 + timedelta(minutes=5))
    ended = await start(store, art, teacher.id, T0 + timedelta(minutes=1))
    await store.end_session(ended.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    assert await store.list_active_sessions() == [first, second]


# -- marks ---------------------------------------------------------------------


async def session_with_students(store: Store, count: int) -> tuple[AttendanceSession, list[User]]:
    teacher, class_id = await class_with_teacher(store)
    students = [await make_user(store) for _ in range(count)]
    for student in students:
        await store.add_student(class_id, student.id)
    return await start(store, class_id, teacher.id), students


async def test_a_second_mark_for_a_student_replaces_the_first(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    await store.put_mark(mark(session, kim, "present", T0))
    latest = mark(session, kim, "absent", T0 + timedelta(seconds=5))
    await store.put_mark(latest)
    assert await store.get_mark(session.id, kim.id) == latest
    assert await store.list_marks(session.id) == [latest]


async def test_marks_are_listed_per_session_in_marking_order(store: Store) -> None:
    session, [kim, sam, lee] = await session_with_students(store, 3)
    other, [pat] = await session_with_students(store, 1)
    marks = [
        mark(session, sam, "late", T0),
        mark(session, kim, "present", T0 + timedelta(seconds=1)),
        mark(session, lee, "absent", T0 + timedelta(seconds=2)),
    ]
    for each in reversed(marks):
        await store.put_mark(each)
    await store.put_mark(mark(other, pat))
    assert await store.list_marks(session.id) == marks
    assert await store.get_mark(session.id, pat.id) is None


async def test_a_mark_keeps_its_source_author_and_extra_fields(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    derived = AttendanceMark(
        session_id=session.id,
        class_id=session.class_id,
        student_id=kim.id,
        status="late",
        source="presence",
        marked_at=T0,
        marked_by=None,
        extra={"presenceSeconds": 1234.5, "intervals": [[0, 60], [90, 300]], "note": None},
    )
    await store.put_mark(derived)
    assert await store.get_mark(session.id, kim.id) == derived


async def test_a_mark_in_an_unknown_session_is_not_found(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    stray = AttendanceMark(
        session_id=SessionId(new_id()),
        class_id=session.class_id,
        student_id=UserId(kim.id),
        status="present",
        source="teacher",
        marked_at=T0,
    )
    with pytest.raises(NotFound) as caught:
        await store.put_mark(stray)
    assert caught.value.message == SESSION_NOT_FOUND


# -- time ------------------------------------------------------------------------


async def test_datetimes_round_trip_exactly_as_aware_utc(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    ended_at = datetime(2026, 11, 27, 0, 30, 0, 999000, tzinfo=timezone(timedelta(hours=1)))
    await store.put_mark(mark(session, kim, at=T0))
    ended = await store.end_session(session.id, ended_at=ended_at, summary=SUMMARY)
    stored_session = await store.get_session(session.id)
    stored_mark = await store.get_mark(session.id, kim.id)
    stored_user = await store.get_user(kim.id)
    assert stored_session is not None and stored_mark is not None and stored_user is not None
    assert stored_session == ended
    assert stored_session.started_at == T0 and stored_session.ended_at == ended_at
    assert stored_mark.marked_at == T0
    assert stored_user.created_at == kim.created_at
    for moment in (
        stored_session.started_at,
        stored_session.ended_at,
        stored_mark.marked_at,
        stored_user.created_at,
    ):
        assert moment is not None and moment.utcoffset() == timedelta(0)


async def test_times_are_kept_to_the_millisecond_like_bson(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    precise = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
    session = await start(store, class_id, teacher.id, precise)
    assert session.started_at == precise.replace(microsecond=123000)
    assert await store.get_session(session.id) == session


async def test_naive_datetimes_are_refused(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    with pytest.raises(ValueError, match="naive"):
        await start(store, class_id, teacher.id, datetime(2026, 3, 1, 9, 30))
    assert await store.get_active_session(class_id) is None


# -- lifetime ----------------------------------------------------------------------


async def test_a_new_store_on_the_same_data_sees_everything(backend: Backend) -> None:
    first = backend.make()
    await first.open()
    session, [kim, sam] = await session_with_students(first, 2)
    teacher = await first.get_user(session.teacher_id)
    cls = await first.get_class(session.class_id)
    await first.put_mark(mark(session, kim, "present"))
    ended = await first.end_session(session.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    active = await start(first, session.class_id, session.teacher_id, T0 + timedelta(days=1))
    await first.put_mark(mark(active, sam, "late"))
    await first.close()

    again = backend.make()
    await again.open()
    try:
        assert await again.get_user(kim.id) == kim
        assert await again.get_user_by_email(sam.email) == sam
        assert await again.list_users("teacher") == [teacher]
        assert await again.get_class(session.class_id) == cls
        assert await again.list_sessions(session.class_id) == [active, ended]
        assert await again.get_active_session(session.class_id) == active
        assert await again.latest_ended_session(session.class_id) == ended
        assert await again.list_marks(session.id) == [mark(session, kim, "present")]
        assert await again.list_marks(active.id) == [mark(active, sam, "late")]
        with pytest.raises(Conflict):
            await make_user(again, email=kim.email.upper())
    finally:
        await again.close()


async def test_opening_and_closing_twice_is_harmless(backend: Backend) -> None:
    store = backend.make()
    await store.open()
    await store.open()
    user = await make_user(store)
    await store.close()
    await store.close()
    await store.open()
    try:
        assert await store.get_user(user.id) == user
    finally:
        await store.close()

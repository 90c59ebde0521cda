"""Class settings, a student's history, and presence: the same behaviour on every backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson import ObjectId

from api.errors import CLASS_NOT_FOUND, NotFound
from api.ids import ClassId, RoomId, SessionId, UserId, new_id
from api.models import (
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    PresenceCounters,
    PresenceEvent,
    PresenceKind,
    User,
)
from api.store import Store
from tests.store.conftest import Backend, mongo_client
from tests.store.test_store_contract import (
    SUMMARY,
    T0,
    class_with_teacher,
    make_user,
    malformed_ids,
    mark,
    session_with_students,
    start,
)

STRICT = AttendancePolicy(present_ratio=0.9, late_after_seconds=120)

# What the presence policy will keep with a derived mark: ISO strings, ints, lists of
# [start, end] ISO pairs and nested dicts.
PRESENCE_DETAIL: dict[str, Any] = {
    "firstJoinAt": "2026-11-26T23:01:05.250Z",
    "presenceMs": 3_250_125,
    "ratio": 0.8125,
    "intervals": [
        ["2026-11-26T23:01:05.250Z", "2026-11-26T23:40:00.000Z"],
        ["2026-11-26T23:41:12.500Z", "2026-11-27T00:01:04.123Z"],
    ],
    "counters": {"cameraMs": 2_900_000, "micMs": 1_200_000, "talkMs": 95_000},
    "policy": {"presentRatio": 0.75, "lateAfterSeconds": 600},
    "reconnects": [],
    "note": None,
    "manual": False,
}


def event(
    session: AttendanceSession,
    user: User,
    kind: PresenceKind = "connected",
    at: datetime = T0,
    reason: str | None = None,
) -> PresenceEvent:
    return PresenceEvent(
        session_id=session.id,
        class_id=session.class_id,
        user_id=user.id,
        kind=kind,
        at=at,
        reason=reason,
    )


def counters(
    session: AttendanceSession, user: User, ms: int, at: datetime = T0
) -> PresenceCounters:
    return PresenceCounters(
        session_id=session.id,
        class_id=session.class_id,
        user_id=user.id,
        camera_ms=ms,
        mic_ms=ms // 2,
        talk_ms=ms // 10,
        last_seen_at=at,
    )


def derived_mark(
    session: AttendanceSession, student: User, extra: dict[str, Any]
) -> AttendanceMark:
    return AttendanceMark(
        session_id=session.id,
        class_id=session.class_id,
        student_id=student.id,
        status="present",
        source="presence",
        marked_at=T0 + timedelta(hours=1),
        extra=extra,
    )


# -- class settings ------------------------------------------------------------------


async def test_a_new_class_has_the_default_policy_and_no_student_recordings_or_sharing(
    store: Store,
) -> None:
    teacher = await make_user(store, "teacher")
    created = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    assert created.policy == AttendancePolicy(present_ratio=0.75, late_after_seconds=600)
    assert created.allow_student_recordings is False
    assert created.allow_student_screen_share is False
    assert await store.get_class(created.id) == created


async def test_class_settings_change_only_what_is_given(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    kim = await make_user(store)
    await store.add_student(class_id, kim.id)

    stricter = await store.update_class_settings(class_id, policy=STRICT)
    assert stricter.policy == STRICT and stricter.allow_student_recordings is False
    assert stricter.allow_student_screen_share is False
    allowed = await store.update_class_settings(class_id, allow_student_recordings=True)
    assert allowed.policy == STRICT and allowed.allow_student_recordings is True
    sharing = await store.update_class_settings(class_id, allow_student_screen_share=True)
    assert sharing == replace(allowed, allow_student_screen_share=True)
    private = await store.update_class_settings(class_id, allow_student_recordings=False)
    assert private == replace(sharing, allow_student_recordings=False)
    unchanged = await store.update_class_settings(class_id)
    assert unchanged == private
    assert private.student_ids == (kim.id,) and private.teacher_id == teacher.id

    assert await store.get_class(class_id) == private
    assert await store.list_classes_for_teacher(teacher.id) == [private]
    assert await store.list_classes_for_student(kim.id) == [private]


async def test_a_fractional_ratio_and_a_zero_grace_round_trip_exactly(store: Store) -> None:
    _, class_id = await class_with_teacher(store)
    policy = AttendancePolicy(present_ratio=0.1 + 0.2, late_after_seconds=0)
    updated = await store.update_class_settings(class_id, policy=policy)
    stored = await store.get_class(class_id)
    assert updated.policy == policy
    assert stored is not None and stored.policy == policy
    assert type(stored.policy.present_ratio) is float
    assert type(stored.policy.late_after_seconds) is int


async def test_an_integral_ratio_reads_back_as_a_float(store: Store) -> None:
    _, class_id = await class_with_teacher(store)
    await store.update_class_settings(class_id, policy=AttendancePolicy(present_ratio=1))
    stored = await store.get_class(class_id)
    assert stored is not None and stored.policy.present_ratio == 1.0
    assert type(stored.policy.present_ratio) is float


@pytest.mark.parametrize("class_id", [*malformed_ids(), new_id()])
async def test_settings_of_an_unknown_or_malformed_class_are_not_found(
    store: Store, class_id: str
) -> None:
    await class_with_teacher(store)
    with pytest.raises(NotFound) as caught:
        await store.update_class_settings(class_id, allow_student_recordings=True)
    assert caught.value.message == CLASS_NOT_FOUND


async def test_concurrent_settings_changes_and_enrolments_all_land(store: Store) -> None:
    _, class_id = await class_with_teacher(store)
    students = [await make_user(store) for _ in range(4)]
    await asyncio.gather(
        store.update_class_settings(class_id, policy=STRICT),
        *(store.add_student(class_id, s.id) for s in students[:2]),
        store.update_class_settings(class_id, allow_student_recordings=True),
        *(store.add_student(class_id, s.id) for s in students[2:]),
        store.update_class_settings(class_id, allow_student_screen_share=True),
    )
    stored = await store.get_class(class_id)
    assert stored is not None
    assert stored.policy == STRICT and stored.allow_student_recordings is True
    assert stored.allow_student_screen_share is True
    assert sorted(stored.student_ids) == sorted(s.id for s in students)


# -- a student's marks across sessions ---------------------------------------------------


async def test_a_students_marks_are_listed_newest_session_first(store: Store) -> None:
    teacher, class_id = await class_with_teacher(store)
    kim, sam = await make_user(store), await make_user(store)
    # Started out of creation order: the session's start time decides, not when it was made.
    sessions = []
    for day in (1, 0, 2):
        session = await start(store, class_id, teacher.id, T0 + timedelta(days=day))
        sessions.append(session)
        if day != 2:
            end = T0 + timedelta(days=day, hours=1)
            await store.end_session(session.id, ended_at=end, summary=SUMMARY)
    day1, day0, day2 = sessions
    kims = {
        day0.id: mark(day0, kim, "late", T0 + timedelta(days=3)),
        day1.id: derived_mark(day1, kim, PRESENCE_DETAIL),
        day2.id: mark(day2, kim, "absent", T0),
    }
    for each in kims.values():
        await store.put_mark(each)
    await store.put_mark(mark(day1, sam, "present"))
    other, [kim_elsewhere] = await session_with_students(store, 1)
    await store.put_mark(mark(other, kim_elsewhere))

    assert await store.list_marks_for_student(class_id, kim.id) == [
        kims[day2.id],
        kims[day1.id],
        kims[day0.id],
    ]
    assert await store.list_marks_for_student(class_id, sam.id) == [mark(day1, sam, "present")]
    assert await store.list_marks_for_student(other.class_id, kim.id) == []


@pytest.mark.parametrize("some_id", [*malformed_ids(), new_id()])
async def test_unknown_and_malformed_ids_have_no_marks(store: Store, some_id: str) -> None:
    session, [kim] = await session_with_students(store, 1)
    await store.put_mark(mark(session, kim))
    assert await store.list_marks_for_student(some_id, kim.id) == []
    assert await store.list_marks_for_student(session.class_id, some_id) == []


# -- marks keep presence detail ----------------------------------------------------------


async def test_a_mark_extra_with_presence_detail_round_trips_unchanged(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    await store.put_mark(mark(session, kim, "present"))
    derived = derived_mark(session, kim, PRESENCE_DETAIL)
    # The second write replaces an existing mark: the path a re-derived status takes.
    await store.put_mark(derived)
    assert await store.get_mark(session.id, kim.id) == derived
    assert await store.list_marks(session.id) == [derived]
    assert await store.list_marks_for_student(session.class_id, kim.id) == [derived]
    stored = await store.get_mark(session.id, kim.id)
    assert stored is not None and stored.extra == PRESENCE_DETAIL
    assert type(stored.extra["intervals"][0]) is list


# -- presence events --------------------------------------------------------------------


async def test_presence_events_are_listed_in_append_order_even_within_one_millisecond(
    store: Store,
) -> None:
    session, [kim, sam] = await session_with_students(store, 2)
    other, [lee] = await session_with_students(store, 1)
    same_ms = T0 + timedelta(seconds=30)
    appended = [
        event(session, kim, "connected", T0),
        event(session, sam, "connected", same_ms),
        event(session, kim, "disconnected", same_ms, reason="ice-failed"),
        event(session, kim, "connected", same_ms),
        # Appended after, stamped earlier: the order is the append order, not the time.
        event(session, sam, "disconnected", T0 + timedelta(seconds=29), reason="left"),
    ]
    # More than ten, so an order that compared sequence numbers as text would show.
    appended += [
        event(session, kim, kind, same_ms + timedelta(milliseconds=1))
        for kind in ("disconnected", "connected") * 4
    ]
    for index, each in enumerate(appended):
        await store.append_presence_event(each)
        if index == 2:
            await store.append_presence_event(event(other, lee, "connected", same_ms))
    assert await store.list_presence_events(session.id) == appended
    assert await store.list_presence_events(other.id) == [event(other, lee, "connected", same_ms)]
    # One participant's, in the same order (what a student's own live status reads).
    for user in (kim, sam):
        own = [each for each in appended if each.user_id == user.id]
        assert await store.list_presence_events(session.id, user.id) == own
    assert await store.list_presence_events(session.id, lee.id) == []
    assert await store.list_presence_events(other.id, lee.id) == [
        event(other, lee, "connected", same_ms)
    ]


async def test_concurrent_appends_keep_their_call_order(store: Store) -> None:
    session, [kim, sam] = await session_with_students(store, 2)
    kinds: tuple[PresenceKind, ...] = ("connected", "disconnected")
    appended = [event(session, (kim, sam)[i % 2], kinds[i // 2 % 2], T0) for i in range(20)]
    await asyncio.gather(*(store.append_presence_event(each) for each in appended))
    assert await store.list_presence_events(session.id) == appended


@pytest.mark.parametrize("session_id", [*malformed_ids(), new_id()])
async def test_unknown_and_malformed_sessions_have_no_presence(
    store: Store, session_id: str
) -> None:
    session, [kim] = await session_with_students(store, 1)
    await store.append_presence_event(event(session, kim))
    await store.put_presence_counters(counters(session, kim, 1000))
    assert await store.list_presence_events(session_id) == []
    assert await store.list_presence_counters(session_id) == []


async def test_presence_writes_do_not_check_that_the_session_exists(store: Store) -> None:
    # They are hot-path writes from the room that runs the session; no read comes first.
    stray = AttendanceSession(
        id=SessionId(new_id()),
        class_id=ClassId(new_id()),
        room_id=RoomId(new_id()),
        teacher_id=UserId(new_id()),
        started_at=T0,
    )
    kim = await make_user(store)
    await store.append_presence_event(event(stray, kim))
    await store.put_presence_counters(counters(stray, kim, 5))
    assert await store.list_presence_events(stray.id) == [event(stray, kim)]
    assert await store.list_presence_counters(stray.id) == [counters(stray, kim, 5)]


# -- presence counters ------------------------------------------------------------------


async def test_presence_counters_are_replaced_per_session_and_user(store: Store) -> None:
    session, students = await session_with_students(store, 3)
    other, [lee] = await session_with_students(store, 1)
    for second in range(3):
        for student in students:
            at = T0 + timedelta(seconds=second)
            await store.put_presence_counters(counters(session, student, second * 1000, at))
    await store.put_presence_counters(counters(other, lee, 42))
    latest = T0 + timedelta(seconds=2)
    expected = [counters(session, s, 2000, latest) for s in sorted(students, key=lambda u: u.id)]
    assert await store.list_presence_counters(session.id) == expected
    assert await store.list_presence_counters(other.id) == [counters(other, lee, 42)]
    for student in students:
        assert await store.list_presence_counters(session.id, student.id) == [
            counters(session, student, 2000, latest)
        ]
    assert await store.list_presence_counters(session.id, lee.id) == []


async def test_presence_counters_hold_totals_beyond_32_bits(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    huge = counters(session, kim, 2**40 + 7)
    await store.put_presence_counters(huge)
    assert await store.list_presence_counters(session.id) == [huge]


async def test_concurrent_first_puts_of_one_participant_leave_one_record(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    puts = [counters(session, kim, ms) for ms in range(8)]
    await asyncio.gather(*(store.put_presence_counters(each) for each in puts))
    [stored] = await store.list_presence_counters(session.id)
    assert stored in puts


# -- presence time ------------------------------------------------------------------------


async def test_presence_times_round_trip_to_the_millisecond_as_aware_utc(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    plus_one = timezone(timedelta(hours=1))
    precise = datetime(2026, 11, 27, 0, 1, 4, 123987, tzinfo=plus_one)
    kept = datetime(2026, 11, 26, 23, 1, 4, 123000, tzinfo=UTC)
    await store.append_presence_event(event(session, kim, at=precise))
    await store.put_presence_counters(counters(session, kim, 1, at=precise))
    [stored_event] = await store.list_presence_events(session.id)
    [stored_counters] = await store.list_presence_counters(session.id)
    assert stored_event == event(session, kim, at=kept)
    assert stored_counters == counters(session, kim, 1, at=kept)
    for moment in (stored_event.at, stored_counters.last_seen_at):
        assert moment.utcoffset() == timedelta(0)


async def test_naive_presence_times_are_refused(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    naive = datetime(2026, 3, 1, 9, 30)
    with pytest.raises(ValueError, match="naive"):
        await store.append_presence_event(event(session, kim, at=naive))
    with pytest.raises(ValueError, match="naive"):
        await store.put_presence_counters(counters(session, kim, 1, at=naive))
    assert await store.list_presence_events(session.id) == []
    assert await store.list_presence_counters(session.id) == []


# -- lifetime ------------------------------------------------------------------------------


async def test_a_new_store_on_the_same_data_sees_settings_presence_and_history(
    backend: Backend,
) -> None:
    first = backend.make()
    await first.open()
    session, [kim] = await session_with_students(first, 1)
    settled = await first.update_class_settings(
        session.class_id, policy=STRICT, allow_student_recordings=True
    )
    events = [event(session, kim, "connected"), event(session, kim, "disconnected")]
    for each in events:
        await first.append_presence_event(each)
    await first.put_presence_counters(counters(session, kim, 7000))
    derived = derived_mark(session, kim, PRESENCE_DETAIL)
    await first.put_mark(derived)
    await first.close()

    again = backend.make()
    await again.open()
    try:
        assert await again.get_class(session.class_id) == settled
        assert await again.list_marks_for_student(session.class_id, kim.id) == [derived]
        # Appends after a restart continue the same order.
        later = event(session, kim, "connected", T0)
        await again.append_presence_event(later)
        assert await again.list_presence_events(session.id) == [*events, later]
        assert await again.list_presence_counters(session.id) == [counters(session, kim, 7000)]
    finally:
        await again.close()


# -- what the Mongo documents look like -----------------------------------------------------


async def _raw(backend: Backend, collection: str) -> list[dict[str, Any]]:
    assert backend.mongo_uri is not None and backend.mongo_db is not None
    client = mongo_client(backend.mongo_uri)
    try:
        return await client[backend.mongo_db][collection].find({}).to_list()
    finally:
        await client.close()


async def test_mongo_documents_keep_presence_detail_nested_and_dates_as_dates(
    mongo_backend: Backend,
) -> None:
    store = mongo_backend.make()
    await store.open()
    try:
        session, [kim] = await session_with_students(store, 1)
        await store.update_class_settings(session.class_id, policy=STRICT)
        await store.put_mark(mark(session, kim))
        await store.put_mark(derived_mark(session, kim, PRESENCE_DETAIL))
        await store.append_presence_event(event(session, kim))
        for second in range(2):
            at = T0 + timedelta(seconds=second)
            await store.put_presence_counters(counters(session, kim, 1000, at))
    finally:
        await store.close()

    [class_doc] = await _raw(mongo_backend, "classes")
    assert class_doc["policy"] == {"presentRatio": 0.9, "lateAfterSeconds": 120}
    assert isinstance(class_doc["createdAt"], datetime)
    [mark_doc] = await _raw(mongo_backend, "marks")
    # A real subdocument with real arrays, not a JSON string, after a replace.
    assert mark_doc["extra"] == PRESENCE_DETAIL
    assert mark_doc["markedAt"] == T0 + timedelta(hours=1)
    [event_doc] = await _raw(mongo_backend, "presence_events")
    assert event_doc["at"] == T0 and event_doc["seq"] == 1
    [counters_doc] = await _raw(mongo_backend, "presence_counters")
    assert counters_doc["lastSeenAt"] == T0 + timedelta(seconds=1)


async def test_a_mongo_class_written_before_settings_existed_reads_the_defaults(
    mongo_backend: Backend,
) -> None:
    store = mongo_backend.make()
    await store.open()
    try:
        teacher = await make_user(store, "teacher")
        kim, sam = await make_user(store), await make_user(store)
        class_id = ObjectId()
        old_doc = {
            "_id": class_id,
            "className": "Physics",
            "teacherId": teacher.id,
            "studentIds": [kim.id],
            "createdAt": T0,
        }
        assert mongo_backend.mongo_uri is not None and mongo_backend.mongo_db is not None
        client = mongo_client(mongo_backend.mongo_uri)
        try:
            await client[mongo_backend.mongo_db]["classes"].insert_one(old_doc)
        finally:
            await client.close()

        old = await store.get_class(str(class_id))
        assert old is not None
        assert old.policy == AttendancePolicy() and old.allow_student_recordings is False
        assert old.allow_student_screen_share is False
        updated = await store.update_class_settings(str(class_id), allow_student_recordings=True)
        assert updated.allow_student_recordings is True and updated.student_ids == (kim.id,)
        enrolled = await store.add_student(str(class_id), sam.id)
        assert enrolled == await store.get_class(str(class_id))
        assert enrolled.student_ids == (kim.id, sam.id) and enrolled.allow_student_recordings
        sharing = await store.update_class_settings(str(class_id), allow_student_screen_share=True)
        assert sharing == replace(enrolled, allow_student_screen_share=True)
    finally:
        await store.close()

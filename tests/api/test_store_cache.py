"""The store cache (``api.store_cache``): answers from memory, each dropped by the writes
that may change it, never kept from a read that overlapped a write or an outage."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram

from api.ids import UserId
from api.metrics import TimedStore
from api.models import (
    AttendanceMark,
    AttendancePolicy,
    ClassRecord,
    PresenceCounters,
    PresenceEvent,
    SessionSummary,
)
from api.store import SqliteStore, Store
from api.store_cache import CachedStore
from api.timeutil import utcnow


class Calls:
    """How many calls of each operation reached the store (through a `TimedStore`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.seconds = Histogram("s", "", ["operation"], registry=self.registry)

    def __getitem__(self, operation: str) -> int:
        value = self.registry.get_sample_value("s_count", {"operation": operation})
        return int(value or 0)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "db.sqlite3")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def cached(inner: SqliteStore, calls: Calls) -> CachedStore:
    return CachedStore.wrap(TimedStore.wrap(inner, calls.seconds))


async def _class(store: Store, students: int = 1) -> ClassRecord:
    teacher = await store.create_user(
        name="T", email="t@school.test", password_hash="x", role="teacher"
    )
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    for number in range(students):
        student = await store.create_user(
            name=f"S{number}", email=f"s{number}@school.test", password_hash="x", role="student"
        )
        cls = await store.add_student(cls.id, student.id)
    return cls


def test_every_method_of_the_store_is_there() -> None:
    assert not CachedStore.__abstractmethods__


async def test_reads_are_answered_from_memory_until_a_write_changes_them(
    cached: CachedStore, calls: Calls
) -> None:
    cls = await _class(cached)
    for _ in range(3):
        assert await cached.get_class(cls.id) == cls
        assert await cached.get_active_session(cls.id) is None
    assert calls["get_class"] == 1
    assert calls["get_active_session"] == 1

    newcomer = await cached.create_user(
        name="N", email="n@school.test", password_hash="x", role="student"
    )
    await cached.add_student(cls.id, newcomer.id)
    got = await cached.get_class(cls.id)
    assert got is not None and newcomer.id in got.student_ids
    policy = AttendancePolicy(present_ratio=0.5, late_after_seconds=60)
    await cached.update_class_settings(cls.id, policy=policy)
    got = await cached.get_class(cls.id)
    assert got is not None and got.policy == policy

    session = await cached.start_session(
        class_id=cls.id, teacher_id=cls.teacher_id, started_at=utcnow()
    )
    assert await cached.get_active_session(cls.id) == session
    await cached.end_session(
        session.id, ended_at=utcnow(), summary=SessionSummary(present=0, absent=0, total=0)
    )
    assert await cached.get_active_session(cls.id) is None
    assert calls["get_active_session"] == 3


async def test_marks_presence_and_counters_are_dropped_by_their_writes(
    cached: CachedStore, calls: Calls
) -> None:
    cls = await _class(cached, students=2)
    first, second = cls.student_ids
    session = await cached.start_session(
        class_id=cls.id, teacher_id=cls.teacher_id, started_at=utcnow()
    )
    assert await cached.get_mark(session.id, first) is None
    assert await cached.list_marks(session.id) == []
    mark = AttendanceMark(
        session_id=session.id,
        class_id=cls.id,
        student_id=first,
        status="absent",
        source="teacher",
        marked_at=utcnow(),
        marked_by=cls.teacher_id,
    )
    await cached.put_mark(mark)
    assert await cached.get_mark(session.id, first) == mark
    assert await cached.get_mark(session.id, second) is None
    assert await cached.list_marks(session.id) == [mark]

    joined = PresenceEvent(
        session_id=session.id,
        class_id=cls.id,
        user_id=UserId(second),
        kind="connected",
        at=session.started_at + timedelta(seconds=1),
    )
    assert await cached.list_presence_events(session.id, second) == []
    assert await cached.list_presence_events(session.id) == []
    assert await cached.list_presence_events(session.id, first) == []
    await cached.append_presence_event(joined)
    assert await cached.list_presence_events(session.id, second) == [joined]
    assert await cached.list_presence_events(session.id) == [joined]
    assert await cached.list_presence_events(session.id, first) == []

    counted = PresenceCounters(
        session_id=session.id,
        class_id=cls.id,
        user_id=UserId(second),
        camera_ms=1000,
        mic_ms=0,
        talk_ms=0,
        last_seen_at=joined.at,
    )
    assert await cached.list_presence_counters(session.id, second) == []
    assert await cached.list_presence_counters(session.id) == []
    await cached.put_presence_counters(counted)
    assert await cached.list_presence_counters(session.id, second) == [counted]
    assert await cached.list_presence_counters(session.id) == [counted]

    for _ in range(3):  # and then from memory again
        await cached.list_presence_events(session.id, second)
        await cached.get_mark(session.id, first)
    assert calls["list_presence_events"] == 5
    assert calls["get_mark"] == 3


async def test_an_answer_is_a_copy_the_caller_may_change(cached: CachedStore) -> None:
    cls = await _class(cached)
    session = await cached.start_session(
        class_id=cls.id, teacher_id=cls.teacher_id, started_at=utcnow()
    )
    events = await cached.list_presence_events(session.id)
    events.append(None)  # type: ignore[arg-type]
    assert await cached.list_presence_events(session.id) == []


class SlowReads(SqliteStore):
    """Its ``get_class`` holds the answer it read until ``release`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = asyncio.Event()
        self.reading = asyncio.Event()

    async def get_class(self, class_id: str) -> ClassRecord | None:
        cls = await super().get_class(class_id)
        self.reading.set()
        await self.release.wait()
        return cls


async def test_a_read_that_overlapped_a_write_is_not_kept(tmp_path: Path) -> None:
    inner = SlowReads(tmp_path / "db.sqlite3")
    cached = CachedStore.wrap(inner)
    await cached.open()
    try:
        inner.release.set()
        cls = await _class(cached)
        newcomer = await cached.create_user(
            name="N", email="n@school.test", password_hash="x", role="student"
        )
        inner.release.clear()
        inner.reading.clear()
        old_read = asyncio.create_task(cached.get_class(cls.id))
        await inner.reading.wait()  # it has read the class without the newcomer
        await cached.add_student(cls.id, newcomer.id)
        inner.release.set()
        old = await old_read
        assert old is not None and newcomer.id not in old.student_ids
        now = await cached.get_class(cls.id)
        assert now is not None and newcomer.id in now.student_ids
    finally:
        await cached.close()


class Outage(SqliteStore):
    """A store whose ``list_classes_for_teacher`` fails as a locked database does."""

    async def list_classes_for_teacher(self, teacher_id: str) -> list[ClassRecord]:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = sqlite3.SQLITE_BUSY
        raise error


async def test_a_failing_store_call_empties_the_cache(tmp_path: Path, calls: Calls) -> None:
    inner = Outage(tmp_path / "db.sqlite3")
    cached = CachedStore.wrap(TimedStore.wrap(inner, calls.seconds))
    await cached.open()
    try:
        cls = await _class(cached)
        await cached.get_class(cls.id)
        await cached.get_active_session(cls.id)
        with pytest.raises(sqlite3.OperationalError):
            await cached.list_classes_for_teacher(cls.teacher_id)
        await cached.get_class(cls.id)
        await cached.get_active_session(cls.id)
        assert (calls["get_class"], calls["get_active_session"]) == (2, 2)
    finally:
        await cached.close()


async def test_unknown_classes_are_not_kept_and_the_cache_is_bounded(
    inner: SqliteStore, calls: Calls
) -> None:
    cached = CachedStore.wrap(TimedStore.wrap(inner, calls.seconds), limit=2)
    for _ in range(2):
        assert await cached.get_class("0123456789abcdef01234567") is None
    assert calls["get_class"] == 2
    classes = [await _class_of(cached, number) for number in range(3)]
    for cls in classes:
        await cached.get_class(cls.id)
    await cached.get_class(classes[2].id)
    await cached.get_class(classes[0].id)  # the least recently used, dropped for the third
    assert calls["get_class"] == 2 + 4


async def _class_of(store: Store, number: int) -> ClassRecord:
    teacher = await store.create_user(
        name="T", email=f"t{number}@school.test", password_hash="x", role="teacher"
    )
    return await store.create_class(class_name=f"C{number}", teacher_id=teacher.id)

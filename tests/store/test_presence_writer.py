"""The presence writer on a real SQLite file that cannot take writes for a while (another
connection holds the write lock; the server's connection may not grow the file): writes
wait in order and are stored once it can, a drain says at once that the store is still
unavailable, and the server's stop waits a bounded time, then counts what is lost."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from api.errors import InsufficientStorage, ServiceUnavailable
from api.models import AttendanceSession, PresenceEvent, PresenceKind, User
from api.presence.buffer import PresenceBuffer
from api.presence.writer import PresenceBacklog, PresenceWriter
from api.store.outage import STORE_FULL, STORE_UNAVAILABLE
from api.store.rules import stored_moment
from api.store.sqlite import SqliteStore
from api.timeutil import utcnow
from tests.store.test_store_contract import session_with_students

DB = "classroom.sqlite3"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / DB, busy_timeout=0.05)
    await opened.open()
    yield opened
    await opened.close()


def events(session: AttendanceSession, user: User, count: int) -> list[PresenceEvent]:
    kinds: list[PresenceKind] = ["connected", "disconnected"]
    start = stored_moment(utcnow())  # as the store gives it back
    return [
        PresenceEvent(
            session_id=session.id,
            class_id=session.class_id,
            user_id=user.id,
            kind=kinds[n % 2],
            at=start + timedelta(milliseconds=10 * n),
            reason=None if n % 2 == 0 else "left",
        )
        for n in range(count)
    ]


def writer_of(store: SqliteStore, backlog: PresenceBacklog) -> PresenceWriter:
    buffer = PresenceBuffer(limit=1000, grace=timedelta(seconds=15), stats=backlog.stats)
    writer = PresenceWriter(store, buffer, "test")
    backlog.add(writer)
    return writer


async def test_writes_wait_in_order_behind_a_lock_and_are_stored_once_it_is_released(
    store: SqliteStore, tmp_path: Path
) -> None:
    session, [kim] = await session_with_students(store, 1)
    backlog = PresenceBacklog()
    writer = writer_of(store, backlog)
    other = sqlite3.connect(tmp_path / DB, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        pushed = events(session, kim, 6)
        for event in pushed:
            writer.push(event)
        started = time.monotonic()
        assert not await writer.drain(10.0)
        assert time.monotonic() - started < 2.0  # one refused attempt, not the timeout
        assert isinstance(writer.outage, ServiceUnavailable)
        assert writer.outage.message == STORE_UNAVAILABLE
        assert backlog.snapshot()["pending"] == 6
    finally:
        other.rollback()
        other.close()
    assert await writer.drain(5.0)
    assert writer.outage is None
    assert await store.list_presence_events(session.id, kim.id) == pushed
    assert backlog.snapshot() | {"oldestSeconds": None} == {
        "pending": 0,
        "oldestSeconds": None,
        "merged": 0,
        "dropped": 0,
        "failed": 0,
    }
    assert await backlog.close(1.0) == 0


async def test_a_file_that_cannot_grow_is_storage_full_until_it_can(store: SqliteStore) -> None:
    session, [kim] = await session_with_students(store, 1)
    writer = writer_of(store, PresenceBacklog())
    await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1").fetchone())
    pushed = events(session, kim, 200)  # more than the last page's free room
    for event in pushed:
        writer.push(event)
    assert not await writer.drain(10.0)
    assert isinstance(writer.outage, InsufficientStorage)
    assert writer.outage.message == STORE_FULL
    await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823").fetchone())
    assert await writer.drain(5.0)
    assert await store.list_presence_events(session.id, kim.id) == pushed


async def test_the_stop_waits_a_bounded_time_then_counts_what_is_lost(
    store: SqliteStore, tmp_path: Path
) -> None:
    session, [kim, lee] = await session_with_students(store, 2)
    backlog = PresenceBacklog()
    other = sqlite3.connect(tmp_path / DB, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = writer_of(store, backlog)
        for event in events(session, kim, 4):
            first.push(event)
        asyncio.get_running_loop().call_later(0.3, other.rollback)
        assert await backlog.close(5.0) == 0  # released within the wait: all stored
        assert len(await store.list_presence_events(session.id, kim.id)) == 4

        other.execute("BEGIN IMMEDIATE")
        second = writer_of(store, backlog)
        for event in events(session, lee, 3):
            second.push(event)
        started = time.monotonic()
        assert await backlog.close(0.5) == 3
        assert time.monotonic() - started < 1.5
    finally:
        if other.in_transaction:
            other.rollback()
        other.close()
    assert await store.list_presence_events(session.id, lee.id) == []

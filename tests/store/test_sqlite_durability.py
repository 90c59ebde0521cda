"""SqliteStore keeps every acknowledged write through kill -9, its file settings, and
databases written by earlier builds."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.ids import ClassId, RoomId, SessionId, UserId
from api.models import (
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    ClassRecord,
    PresenceCounters,
    PresenceEvent,
    SessionSummary,
)
from api.store import SqliteStore
from api.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, connect

REPO = Path(__file__).resolve().parents[2]
ACKNOWLEDGED_BEFORE_KILL = 300

# Writes users forever; a line is printed only after create_user has returned (committed).
WRITER = """
import asyncio, sys
from pathlib import Path
from api.store import SqliteStore

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    await store.open()
    number = 0
    while True:
        user = await store.create_user(
            name=f"user {number}", email=f"user{number}@school.test", role="student"
        )
        print(user.id, user.email, flush=True)
        number += 1

asyncio.run(main())
"""


# Starts a session, then appends presence events and rewrites counters forever, the way a
# running class does; a line is printed only after each write has returned.
PRESENCE_WRITER = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from api.models import PresenceCounters, PresenceEvent
from api.store import SqliteStore

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    await store.open()
    teacher = await store.create_user(name="T", email="t@school.test", role="teacher")
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    session = await store.start_session(class_id=cls.id, teacher_id=teacher.id, started_at=T0)
    users = [
        (await store.create_user(name=f"S{n}", email=f"s{n}@school.test", role="student")).id
        for n in range(3)
    ]
    print("session", session.id, cls.id, flush=True)
    tick = 0
    while True:
        user = users[tick % 3]
        # Three events share each millisecond: the order must not come from the time.
        at = T0 + timedelta(milliseconds=tick // 3)
        kind = "connected" if tick // 3 % 2 == 0 else "disconnected"
        await store.append_presence_event(
            PresenceEvent(session.id, cls.id, user, kind, at, reason=str(tick))
        )
        print("event", user, kind, tick, flush=True)
        await store.put_presence_counters(
            PresenceCounters(session.id, cls.id, user, tick, tick, tick, at)
        )
        print("counters", user, tick, flush=True)
        tick += 1

asyncio.run(main())
"""


def write_until_killed(path: Path, writer: str = WRITER) -> list[list[str]]:
    """Run a writer, SIGKILL it mid-stream, return every line it acknowledged, split."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", writer, str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    watchdog = threading.Timer(30.0, process.kill)
    watchdog.start()
    try:
        lines: list[bytes] = []
        while len(lines) < ACKNOWLEDGED_BEFORE_KILL:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"writer stopped early: {process.stderr.read()!r}")
            lines.append(line)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        # Lines already in the pipe were acknowledged before the kill, too.
        lines.extend(process.stdout.read().splitlines(keepends=True))
    finally:
        watchdog.cancel()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    return [line.decode().split() for line in lines]


async def test_every_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    acknowledged = await asyncio.to_thread(write_until_killed, path)
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

    store = SqliteStore(path)
    await store.open()
    try:
        for user_id, email in acknowledged:
            user = await store.get_user(user_id)
            assert user is not None and user.email == email
        assert len(await store.list_users("student")) >= len(acknowledged)
    finally:
        await store.close()


async def test_acknowledged_presence_events_and_counters_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    [header, *acknowledged] = await asyncio.to_thread(write_until_killed, path, PRESENCE_WRITER)
    assert header[0] == "session" and len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL - 1
    session_id = header[1]
    # ("event", user, kind, tick) and ("counters", user, tick) lines, in write order.
    events = [(user, kind, tick) for _, user, kind, tick in _lines(acknowledged, "event", 4)]
    latest: dict[str, int] = {}
    for _, user, tick in _lines(acknowledged, "counters", 3):
        latest[user] = int(tick)

    store = SqliteStore(path)
    await store.open()
    try:
        stored_events = await store.list_presence_events(session_id)
        stored_counters = await store.list_presence_counters(session_id)
    finally:
        await store.close()
    # Every acknowledged event, in append order; at most the one in flight comes after.
    stored = [(e.user_id, e.kind, e.reason) for e in stored_events]
    assert stored[: len(events)] == events
    assert len(stored) - len(events) <= 1
    # Each participant's counters hold at least what was last acknowledged for them, and at
    # most the write in flight (written after the last acknowledged event).
    last_event_tick = int(events[-1][2])
    assert {c.user_id for c in stored_counters} == set(latest)
    for counters in stored_counters:
        assert latest[counters.user_id] <= counters.camera_ms <= last_event_tick


def _lines(acknowledged: list[list[str]], what: str, fields: int) -> list[list[str]]:
    chosen = [line for line in acknowledged if line[0] == what]
    assert all(len(line) == fields for line in chosen)
    return chosen


async def test_the_file_is_in_wal_mode_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def test_every_commit_is_synced_before_it_is_acknowledged(tmp_path: Path) -> None:
    # synchronous is a setting of each connection, not of the file: read that of a
    # connection opened as the store opens its own.
    conn = connect(tmp_path / "classroom.sqlite3")
    try:
        level = conn.execute("PRAGMA synchronous").fetchone()
    finally:
        conn.close()
    assert tuple(level) == (2,)  # FULL: the WAL is synced at each commit, not only at checkpoints


async def test_a_database_written_by_a_newer_build_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteStore(path)
    with pytest.raises(SchemaTooNew, match="schema version"):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_user("0" * 24)


def write_v1_database(path: Path) -> None:
    """A database as the first release left it: schema v1, a class with a student, an ended
    session with a mark."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(
            "INSERT INTO users (id, name, email, role, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                (V1_TEACHER, "Ada", "ada@school.test", "teacher", "2026-01-05T08:00:00.000Z"),
                (V1_STUDENT, "Kim", "kim@school.test", "student", "2026-01-05T08:01:00.000Z"),
            ],
        )
        conn.execute(
            "INSERT INTO classes (id, class_name, teacher_id, created_at) VALUES (?, ?, ?, ?)",
            (V1_CLASS, "Physics", V1_TEACHER, "2026-01-05T08:02:00.000Z"),
        )
        conn.execute(
            "INSERT INTO enrolments (class_id, student_id, position, enrolled_at)"
            " VALUES (?, ?, 1, ?)",
            (V1_CLASS, V1_STUDENT, "2026-01-05T08:03:00.000Z"),
        )
        conn.execute(
            "INSERT INTO sessions (id, class_id, room_id, teacher_id, started_at, ended_at,"
            " summary_present, summary_absent, summary_total, summary_late)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, 0, 1, 0)",
            (
                V1_SESSION,
                V1_CLASS,
                "65a0000000000000000000ff",
                V1_TEACHER,
                "2026-01-06T09:00:00.000Z",
                "2026-01-06T10:00:00.000Z",
            ),
        )
        conn.execute(
            "INSERT INTO marks (session_id, student_id, class_id, status, source, marked_at,"
            " marked_by, extra) VALUES (?, ?, ?, 'present', 'teacher', ?, ?, '{}')",
            (V1_SESSION, V1_STUDENT, V1_CLASS, "2026-01-06T09:05:00.000Z", V1_TEACHER),
        )
    finally:
        conn.close()


V1_TEACHER = "65a000000000000000000001"
V1_STUDENT = "65a000000000000000000002"
V1_CLASS = "65a000000000000000000003"
V1_SESSION = "65a000000000000000000004"
JAN_6 = datetime(2026, 1, 6, 9, tzinfo=UTC)


async def test_a_v1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    write_v1_database(path)
    store = SqliteStore(path)
    await store.open()
    try:
        expected_class = ClassRecord(
            id=ClassId(V1_CLASS),
            class_name="Physics",
            teacher_id=UserId(V1_TEACHER),
            student_ids=(UserId(V1_STUDENT),),
            created_at=datetime(2026, 1, 5, 8, 2, tzinfo=UTC),
        )
        # The migration's column defaults are the model's defaults.
        assert expected_class.policy == AttendancePolicy()
        assert not expected_class.allow_student_recordings
        assert not expected_class.allow_student_screen_share
        assert await store.get_class(V1_CLASS) == expected_class
        student = await store.get_user(V1_STUDENT)
        assert student is not None and student.email == "kim@school.test"
        assert await store.list_sessions(V1_CLASS) == [
            AttendanceSession(
                id=SessionId(V1_SESSION),
                class_id=ClassId(V1_CLASS),
                room_id=RoomId("65a0000000000000000000ff"),
                teacher_id=UserId(V1_TEACHER),
                started_at=JAN_6,
                ended_at=JAN_6 + timedelta(hours=1),
                summary=SessionSummary(present=1, absent=0, total=1, late=0),
            )
        ]
        old_mark = AttendanceMark(
            session_id=SessionId(V1_SESSION),
            class_id=ClassId(V1_CLASS),
            student_id=UserId(V1_STUDENT),
            status="present",
            source="teacher",
            marked_at=JAN_6 + timedelta(minutes=5),
            marked_by=UserId(V1_TEACHER),
        )
        assert await store.list_marks_for_student(V1_CLASS, V1_STUDENT) == [old_mark]

        # And what v2 added works on the old rows.
        updated = await store.update_class_settings(V1_CLASS, allow_student_recordings=True)
        assert updated == ClassRecord(**{**vars(expected_class), "allow_student_recordings": True})
        joined = PresenceEvent(
            SessionId(V1_SESSION), ClassId(V1_CLASS), UserId(V1_STUDENT), "connected", JAN_6
        )
        await store.append_presence_event(joined)
        assert await store.list_presence_events(V1_SESSION) == [joined]
        totals = PresenceCounters(
            SessionId(V1_SESSION), ClassId(V1_CLASS), UserId(V1_STUDENT), 1, 2, 3, JAN_6
        )
        await store.put_presence_counters(totals)
        assert await store.list_presence_counters(V1_SESSION) == [totals]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


async def test_a_v3_class_is_migrated_with_student_screen_sharing_off(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    write_v1_database(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statements in MIGRATIONS[1:3]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.execute("UPDATE classes SET allow_student_recordings = 1 WHERE id = ?", (V1_CLASS,))
    finally:
        conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        old = await store.get_class(V1_CLASS)
        assert old is not None
        assert old.allow_student_recordings and not old.allow_student_screen_share
        sharing = await store.update_class_settings(V1_CLASS, allow_student_screen_share=True)
        assert sharing == ClassRecord(**{**vars(old), "allow_student_screen_share": True})
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()

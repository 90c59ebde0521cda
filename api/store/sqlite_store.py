"""The embedded backend: stdlib ``sqlite3`` on one dedicated thread.

Every method ships its work to a single-thread executor that owns the only connection, so
writes are serialised without locks in Python and the event loop never blocks on disk.
Single-statement writes commit on their own; multi-step ones run inside ``BEGIN IMMEDIATE``.
Datetimes are ISO-8601 text with milliseconds (``api.timeutil.iso_ms``), which sorts in time
order and reads back as aware UTC.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..errors import (
    CLASS_NOT_FOUND,
    EMAIL_EXISTS,
    NO_ACTIVE_SESSION,
    SESSION_ALREADY_ACTIVE,
    STUDENT_NOT_FOUND,
    Conflict,
    NotFound,
)
from ..ids import ClassId, RoomId, SessionId, UserId, new_id
from ..models import (
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    ClassRecord,
    PresenceCounters,
    PresenceEvent,
    Role,
    SessionSummary,
    User,
)
from ..recordings.model import Recording, recording_doc, recording_from_doc
from ..timeutil import iso_ms, parse_iso, utcnow
from .base import Store
from .rules import SESSION_NOT_FOUND, TEACHER_NOT_FOUND, normalize_email, stored_moment
from .sqlite_schema import connect, immediate

T = TypeVar("T")
Row = sqlite3.Row


class SqliteStore(Store):
    """A :class:`Store` in one SQLite file (WAL); the default when no MongoDB is configured."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._conn is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            loop = asyncio.get_running_loop()
            self._conn = await loop.run_in_executor(executor, connect, self._path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            return
        self._conn = self._executor = None
        # Queued behind any work already submitted, so that work finishes first.
        await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise RuntimeError("SqliteStore is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, work, conn)

    # -- users --------------------------------------------------------------
    async def create_user(
        self,
        *,
        name: str,
        email: str,
        role: Role,
        password_hash: str | None = None,
        external_id: str | None = None,
    ) -> User:
        user = User(
            id=UserId(new_id()),
            name=name,
            email=normalize_email(email),
            role=role,
            created_at=utcnow(),
            password_hash=password_hash,
            external_id=external_id,
        )

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO users (id, name, email, role, password_hash, external_id,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        user.name,
                        user.email,
                        user.role,
                        user.password_hash,
                        user.external_id,
                        iso_ms(user.created_at),
                    ),
                )
            except sqlite3.IntegrityError as error:
                if "users_email_unique" not in str(error):
                    raise
                raise Conflict(EMAIL_EXISTS) from None

        await self._run(insert)
        return user

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def get_user_by_email(self, email: str) -> User | None:
        row = await self._one(
            "SELECT * FROM users WHERE lower(email) = ?", (normalize_email(email),)
        )
        return _user(row) if row else None

    async def get_user_by_external_id(self, external_id: str) -> User | None:
        row = await self._one(
            "SELECT * FROM users WHERE external_id = ? ORDER BY created_at, id LIMIT 1",
            (external_id,),
        )
        return _user(row) if row else None

    async def list_users(self, role: Role) -> list[User]:
        rows = await self._all(
            "SELECT * FROM users WHERE role = ? ORDER BY created_at, id", (role,)
        )
        return [_user(row) for row in rows]

    # -- classes ------------------------------------------------------------
    async def create_class(self, *, class_name: str, teacher_id: str) -> ClassRecord:
        record = ClassRecord(
            id=ClassId(new_id()),
            class_name=class_name,
            teacher_id=UserId(teacher_id),
            student_ids=(),
            created_at=utcnow(),
        )

        def insert(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                if not _exists(conn, "SELECT 1 FROM users WHERE id = ?", teacher_id):
                    raise NotFound(TEACHER_NOT_FOUND)
                conn.execute(
                    "INSERT INTO classes (id, class_name, teacher_id, created_at, present_ratio,"
                    " late_after_seconds, allow_student_recordings) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.class_name,
                        record.teacher_id,
                        iso_ms(record.created_at),
                        record.policy.present_ratio,
                        record.policy.late_after_seconds,
                        record.allow_student_recordings,
                    ),
                )

        await self._run(insert)
        return record

    async def get_class(self, class_id: str) -> ClassRecord | None:
        records = await self._run(lambda conn: _classes(conn, "id = ?", class_id))
        return records[0] if records else None

    async def add_student(self, class_id: str, student_id: str) -> ClassRecord:
        def enrol(conn: sqlite3.Connection) -> ClassRecord:
            with immediate(conn):
                if not _exists(conn, "SELECT 1 FROM classes WHERE id = ?", class_id):
                    raise NotFound(CLASS_NOT_FOUND)
                if not _exists(conn, "SELECT 1 FROM users WHERE id = ?", student_id):
                    raise NotFound(STUDENT_NOT_FOUND)
                # OR IGNORE: enrolling twice keeps the first entry and its position.
                conn.execute(
                    "INSERT OR IGNORE INTO enrolments (class_id, student_id, position, enrolled_at)"
                    " SELECT ?, ?, coalesce(max(position), 0) + 1, ?"
                    " FROM enrolments WHERE class_id = ?",
                    (class_id, student_id, iso_ms(utcnow()), class_id),
                )
                return _classes(conn, "id = ?", class_id)[0]

        return await self._run(enrol)

    async def update_class_settings(
        self,
        class_id: str,
        *,
        policy: AttendancePolicy | None = None,
        allow_student_recordings: bool | None = None,
    ) -> ClassRecord:
        ratio = policy.present_ratio if policy is not None else None
        late = policy.late_after_seconds if policy is not None else None

        def update(conn: sqlite3.Connection) -> ClassRecord:
            with immediate(conn):
                # One statement: a NULL parameter keeps the column as it is.
                changed = conn.execute(
                    "UPDATE classes SET present_ratio = coalesce(?, present_ratio),"
                    " late_after_seconds = coalesce(?, late_after_seconds),"
                    " allow_student_recordings = coalesce(?, allow_student_recordings)"
                    " WHERE id = ?",
                    (ratio, late, allow_student_recordings, class_id),
                ).rowcount
                if changed == 0:
                    raise NotFound(CLASS_NOT_FOUND)
                return _classes(conn, "id = ?", class_id)[0]

        return await self._run(update)

    async def list_classes_for_teacher(self, teacher_id: str) -> list[ClassRecord]:
        return await self._run(lambda conn: _classes(conn, "teacher_id = ?", teacher_id))

    async def list_classes_for_student(self, student_id: str) -> list[ClassRecord]:
        where = "id IN (SELECT class_id FROM enrolments WHERE student_id = ?)"
        return await self._run(lambda conn: _classes(conn, where, student_id))

    # -- attendance sessions ------------------------------------------------
    async def start_session(
        self, *, class_id: str, teacher_id: str, started_at: datetime
    ) -> AttendanceSession:
        session = AttendanceSession(
            id=SessionId(new_id()),
            class_id=ClassId(class_id),
            room_id=RoomId(new_id()),
            teacher_id=UserId(teacher_id),
            started_at=stored_moment(started_at),
        )

        def insert(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                if not _exists(conn, "SELECT 1 FROM classes WHERE id = ?", class_id):
                    raise NotFound(CLASS_NOT_FOUND)
                if not _exists(conn, "SELECT 1 FROM users WHERE id = ?", teacher_id):
                    raise NotFound(TEACHER_NOT_FOUND)
                active = "SELECT 1 FROM sessions WHERE class_id = ? AND ended_at IS NULL"
                if _exists(conn, active, class_id):
                    raise Conflict(SESSION_ALREADY_ACTIVE)
                conn.execute(
                    "INSERT INTO sessions (id, class_id, room_id, teacher_id, started_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        session.id,
                        session.class_id,
                        session.room_id,
                        session.teacher_id,
                        iso_ms(session.started_at),
                    ),
                )

        await self._run(insert)
        return session

    async def get_session(self, session_id: str) -> AttendanceSession | None:
        row = await self._one("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return _session(row) if row else None

    async def get_active_session(self, class_id: str) -> AttendanceSession | None:
        row = await self._one(
            "SELECT * FROM sessions WHERE class_id = ? AND ended_at IS NULL", (class_id,)
        )
        return _session(row) if row else None

    async def list_active_sessions(self) -> list[AttendanceSession]:
        rows = await self._all(
            "SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY started_at, id", ()
        )
        return [_session(row) for row in rows]

    async def list_sessions(self, class_id: str) -> list[AttendanceSession]:
        rows = await self._all(
            "SELECT * FROM sessions WHERE class_id = ? ORDER BY started_at DESC, id DESC",
            (class_id,),
        )
        return [_session(row) for row in rows]

    async def latest_ended_session(self, class_id: str) -> AttendanceSession | None:
        row = await self._one(
            "SELECT * FROM sessions WHERE class_id = ? AND ended_at IS NOT NULL"
            " ORDER BY ended_at DESC, id DESC LIMIT 1",
            (class_id,),
        )
        return _session(row) if row else None

    async def end_session(
        self, session_id: str, *, ended_at: datetime, summary: SessionSummary
    ) -> AttendanceSession:
        ended_at = stored_moment(ended_at)

        def end(conn: sqlite3.Connection) -> AttendanceSession:
            with immediate(conn):
                row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if row is None:
                    raise NotFound(SESSION_NOT_FOUND)
                if row["ended_at"] is not None:
                    raise Conflict(NO_ACTIVE_SESSION)
                conn.execute(
                    "UPDATE sessions SET ended_at = ?, summary_present = ?, summary_absent = ?,"
                    " summary_total = ?, summary_late = ? WHERE id = ?",
                    (
                        iso_ms(ended_at),
                        summary.present,
                        summary.absent,
                        summary.total,
                        summary.late,
                        session_id,
                    ),
                )
                return replace(_session(row), ended_at=ended_at, summary=summary)

        return await self._run(end)

    # -- marks --------------------------------------------------------------
    async def put_mark(self, mark: AttendanceMark) -> None:
        marked_at = stored_moment(mark.marked_at)

        def upsert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO marks (session_id, student_id, class_id, status, source,"
                    " marked_at, marked_by, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (session_id, student_id) DO UPDATE SET"
                    " class_id = excluded.class_id, status = excluded.status,"
                    " source = excluded.source, marked_at = excluded.marked_at,"
                    " marked_by = excluded.marked_by, extra = excluded.extra",
                    (
                        mark.session_id,
                        mark.student_id,
                        mark.class_id,
                        mark.status,
                        mark.source,
                        iso_ms(marked_at),
                        mark.marked_by,
                        json.dumps(mark.extra),
                    ),
                )
            except sqlite3.IntegrityError as error:
                # The only foreign key on marks is the session.
                if "FOREIGN KEY" not in str(error):
                    raise
                raise NotFound(SESSION_NOT_FOUND) from None

        await self._run(upsert)

    async def get_mark(self, session_id: str, student_id: str) -> AttendanceMark | None:
        row = await self._one(
            "SELECT * FROM marks WHERE session_id = ? AND student_id = ?",
            (session_id, student_id),
        )
        return _mark(row) if row else None

    async def list_marks(self, session_id: str) -> list[AttendanceMark]:
        rows = await self._all(
            "SELECT * FROM marks WHERE session_id = ? ORDER BY marked_at, student_id",
            (session_id,),
        )
        return [_mark(row) for row in rows]

    async def list_marks_for_student(self, class_id: str, student_id: str) -> list[AttendanceMark]:
        rows = await self._all(
            "SELECT marks.* FROM marks JOIN sessions ON sessions.id = marks.session_id"
            " WHERE marks.class_id = ? AND marks.student_id = ?"
            " ORDER BY sessions.started_at DESC, sessions.id DESC",
            (class_id, student_id),
        )
        return [_mark(row) for row in rows]

    # -- presence -------------------------------------------------------------
    async def append_presence_event(self, event: PresenceEvent) -> None:
        params = (
            event.session_id,
            event.class_id,
            event.user_id,
            event.kind,
            iso_ms(stored_moment(event.at)),
            event.reason,
        )

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO presence_events (session_id, class_id, user_id, kind, at, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                params,
            )

        await self._run(insert)

    async def list_presence_events(self, session_id: str) -> list[PresenceEvent]:
        rows = await self._all(
            "SELECT * FROM presence_events WHERE session_id = ? ORDER BY seq", (session_id,)
        )
        return [_presence_event(row) for row in rows]

    async def put_presence_counters(self, counters: PresenceCounters) -> None:
        params = (
            counters.session_id,
            counters.user_id,
            counters.class_id,
            counters.camera_ms,
            counters.mic_ms,
            counters.talk_ms,
            iso_ms(stored_moment(counters.last_seen_at)),
        )

        def upsert(conn: sqlite3.Connection) -> None:
            # One statement, one autocommit: no read first, about once a second per participant.
            conn.execute(
                "INSERT INTO presence_counters (session_id, user_id, class_id, camera_ms,"
                " mic_ms, talk_ms, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, user_id) DO UPDATE SET"
                " class_id = excluded.class_id, camera_ms = excluded.camera_ms,"
                " mic_ms = excluded.mic_ms, talk_ms = excluded.talk_ms,"
                " last_seen_at = excluded.last_seen_at",
                params,
            )

        await self._run(upsert)

    async def list_presence_counters(self, session_id: str) -> list[PresenceCounters]:
        rows = await self._all(
            "SELECT * FROM presence_counters WHERE session_id = ? ORDER BY user_id",
            (session_id,),
        )
        return [_presence_counters(row) for row in rows]

    # -- recordings -----------------------------------------------------------
    async def put_recording(self, recording: Recording) -> None:
        doc = recording_doc(recording)
        params = (recording.id, recording.class_id, doc["startedAt"], json.dumps(doc))
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO recordings (id, class_id, started_at, doc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                params,
            )
        )

    async def get_recording(self, recording_id: str) -> Recording | None:
        row = await self._one("SELECT id, doc FROM recordings WHERE id = ?", (recording_id,))
        return recording_from_doc(row["id"], json.loads(row["doc"])) if row else None

    async def list_recordings(self, class_id: str) -> list[Recording]:
        rows = await self._all(
            "SELECT id, doc FROM recordings WHERE class_id = ? ORDER BY started_at DESC, id DESC",
            (class_id,),
        )
        return [recording_from_doc(row["id"], json.loads(row["doc"])) for row in rows]

    async def list_unfinished_recordings(self) -> list[Recording]:
        rows = await self._all(
            "SELECT id, doc FROM recordings WHERE json_extract(doc, '$.status') = 'recording'"
            " OR json_extract(doc, '$.job.status') IN ('pending', 'running')"
            " ORDER BY started_at, id",
            (),
        )
        return [recording_from_doc(row["id"], json.loads(row["doc"])) for row in rows]

    async def delete_recording(self, recording_id: str) -> bool:
        deleted: int = await self._run(
            lambda conn: (
                conn.execute("DELETE FROM recordings WHERE id = ?", (recording_id,)).rowcount
            )
        )
        return deleted > 0

    # -- helpers --------------------------------------------------------------
    async def _one(self, sql: str, params: Sequence[Any]) -> Row | None:
        row: Row | None = await self._run(lambda conn: conn.execute(sql, params).fetchone())
        return row

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        rows: list[Row] = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return rows


def _exists(conn: sqlite3.Connection, sql: str, value: str) -> bool:
    return conn.execute(sql, (value,)).fetchone() is not None


def _classes(conn: sqlite3.Connection, where: str, value: str) -> list[ClassRecord]:
    """Classes matching ``where`` (a fixed SQL fragment with one ``?``), oldest first,
    each with its students in enrolment order."""
    rows = conn.execute(
        f"SELECT * FROM classes WHERE {where} ORDER BY created_at, id", (value,)
    ).fetchall()
    students: dict[str, list[UserId]] = {row["id"]: [] for row in rows}
    for class_id, student_id in conn.execute(
        "SELECT class_id, student_id FROM enrolments"
        f" WHERE class_id IN (SELECT id FROM classes WHERE {where}) ORDER BY position",
        (value,),
    ):
        students[class_id].append(UserId(student_id))
    return [
        ClassRecord(
            id=ClassId(row["id"]),
            class_name=row["class_name"],
            teacher_id=UserId(row["teacher_id"]),
            student_ids=tuple(students[row["id"]]),
            created_at=parse_iso(row["created_at"]),
            policy=AttendancePolicy(
                present_ratio=float(row["present_ratio"]),
                late_after_seconds=int(row["late_after_seconds"]),
            ),
            allow_student_recordings=bool(row["allow_student_recordings"]),
        )
        for row in rows
    ]


def _user(row: Row) -> User:
    return User(
        id=UserId(row["id"]),
        name=row["name"],
        email=row["email"],
        role=row["role"],
        created_at=parse_iso(row["created_at"]),
        password_hash=row["password_hash"],
        external_id=row["external_id"],
    )


def _session(row: Row) -> AttendanceSession:
    summary = None
    if row["summary_total"] is not None:
        summary = SessionSummary(
            present=row["summary_present"],
            absent=row["summary_absent"],
            total=row["summary_total"],
            late=row["summary_late"],
        )
    return AttendanceSession(
        id=SessionId(row["id"]),
        class_id=ClassId(row["class_id"]),
        room_id=RoomId(row["room_id"]),
        teacher_id=UserId(row["teacher_id"]),
        started_at=parse_iso(row["started_at"]),
        ended_at=parse_iso(row["ended_at"]) if row["ended_at"] is not None else None,
        summary=summary,
    )


def _mark(row: Row) -> AttendanceMark:
    return AttendanceMark(
        session_id=SessionId(row["session_id"]),
        class_id=ClassId(row["class_id"]),
        student_id=UserId(row["student_id"]),
        status=row["status"],
        source=row["source"],
        marked_at=parse_iso(row["marked_at"]),
        marked_by=UserId(row["marked_by"]) if row["marked_by"] is not None else None,
        extra=json.loads(row["extra"]),
    )


def _presence_event(row: Row) -> PresenceEvent:
    return PresenceEvent(
        session_id=SessionId(row["session_id"]),
        class_id=ClassId(row["class_id"]),
        user_id=UserId(row["user_id"]),
        kind=row["kind"],
        at=parse_iso(row["at"]),
        reason=row["reason"],
    )


def _presence_counters(row: Row) -> PresenceCounters:
    return PresenceCounters(
        session_id=SessionId(row["session_id"]),
        class_id=ClassId(row["class_id"]),
        user_id=UserId(row["user_id"]),
        camera_ms=row["camera_ms"],
        mic_ms=row["mic_ms"],
        talk_ms=row["talk_ms"],
        last_seen_at=parse_iso(row["last_seen_at"]),
    )

"""Attendance sessions and marks in SQLite."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime

from ...errors import CLASS_NOT_FOUND, NO_ACTIVE_SESSION, SESSION_ALREADY_ACTIVE, Conflict, NotFound
from ...models import AttendanceMark, AttendanceSession, SessionSummary
from ..records import (
    SUMMARY_FIELDS,
    mark_fields,
    mark_from,
    new_session,
    session_fields,
    session_from,
)
from ..rules import SESSION_NOT_FOUND, TEACHER_NOT_FOUND, stored_moment
from .base import SqliteBase, decode, encode, exists, insert
from .schema import immediate

_ENDING_COLUMNS = ("ended_at", *SUMMARY_FIELDS)


class SqliteAttendance(SqliteBase):
    """The ``sessions`` and ``marks`` tables; a partial unique index keeps one active
    session per class."""

    # -- attendance sessions ------------------------------------------------
    async def start_session(
        self, *, class_id: str, teacher_id: str, started_at: datetime
    ) -> AttendanceSession:
        session = new_session(class_id=class_id, teacher_id=teacher_id, started_at=started_at)

        def write(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                if not exists(conn, "SELECT 1 FROM classes WHERE id = ?", class_id):
                    raise NotFound(CLASS_NOT_FOUND)
                if not exists(conn, "SELECT 1 FROM users WHERE id = ?", teacher_id):
                    raise NotFound(TEACHER_NOT_FOUND)
                active = "SELECT 1 FROM sessions WHERE class_id = ? AND ended_at IS NULL"
                if exists(conn, active, class_id):
                    raise Conflict(SESSION_ALREADY_ACTIVE)
                insert(conn, "sessions", session_fields(session))

        await self._run(write)
        return session

    async def place_session(self, session_id: str, node_id: str) -> None:
        def place(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                row = conn.execute(
                    "SELECT ended_at FROM sessions WHERE id = ?", (session_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(SESSION_NOT_FOUND)
                if row["ended_at"] is not None:
                    raise Conflict(NO_ACTIVE_SESSION)
                conn.execute("UPDATE sessions SET node_id = ? WHERE id = ?", (node_id, session_id))

        await self._run(place)

    async def get_session(self, session_id: str) -> AttendanceSession | None:
        fields = await self._one("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return session_from(fields) if fields else None

    async def get_active_session(self, class_id: str) -> AttendanceSession | None:
        fields = await self._one(
            "SELECT * FROM sessions WHERE class_id = ? AND ended_at IS NULL", (class_id,)
        )
        return session_from(fields) if fields else None

    async def list_active_sessions(self) -> list[AttendanceSession]:
        rows = await self._all(
            "SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY started_at, id", ()
        )
        return [session_from(fields) for fields in rows]

    async def list_sessions(self, class_id: str) -> list[AttendanceSession]:
        rows = await self._all(
            "SELECT * FROM sessions WHERE class_id = ? ORDER BY started_at DESC, id DESC",
            (class_id,),
        )
        return [session_from(fields) for fields in rows]

    async def latest_ended_session(self, class_id: str) -> AttendanceSession | None:
        fields = await self._one(
            "SELECT * FROM sessions WHERE class_id = ? AND ended_at IS NOT NULL"
            " ORDER BY ended_at DESC, id DESC LIMIT 1",
            (class_id,),
        )
        return session_from(fields) if fields else None

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
                ended = replace(session_from(decode(row)), ended_at=ended_at, summary=summary)
                changes = encode(session_fields(ended))
                assignments = ", ".join(f"{column} = ?" for column in _ENDING_COLUMNS)
                conn.execute(
                    f"UPDATE sessions SET {assignments} WHERE id = ?",
                    (*(changes[column] for column in _ENDING_COLUMNS), session_id),
                )
                return ended

        return await self._run(end)

    # -- marks --------------------------------------------------------------
    async def put_mark(self, mark: AttendanceMark) -> None:
        fields = mark_fields(replace(mark, marked_at=stored_moment(mark.marked_at)))

        def upsert(conn: sqlite3.Connection) -> None:
            try:
                insert(conn, "marks", fields, replace_on=("session_id", "student_id"))
            except sqlite3.IntegrityError as error:
                # The only foreign key on marks is the session.
                if "FOREIGN KEY" not in str(error):
                    raise
                raise NotFound(SESSION_NOT_FOUND) from None

        await self._run(upsert)

    async def get_mark(self, session_id: str, student_id: str) -> AttendanceMark | None:
        fields = await self._one(
            "SELECT * FROM marks WHERE session_id = ? AND student_id = ?",
            (session_id, student_id),
        )
        return mark_from(fields) if fields else None

    async def list_marks(self, session_id: str) -> list[AttendanceMark]:
        rows = await self._all(
            "SELECT * FROM marks WHERE session_id = ? ORDER BY marked_at, student_id",
            (session_id,),
        )
        return [mark_from(fields) for fields in rows]

    async def list_marks_for_student(self, class_id: str, student_id: str) -> list[AttendanceMark]:
        rows = await self._all(
            "SELECT marks.* FROM marks JOIN sessions ON sessions.id = marks.session_id"
            " WHERE marks.class_id = ? AND marks.student_id = ?"
            " ORDER BY sessions.started_at DESC, sessions.id DESC",
            (class_id, student_id),
        )
        return [mark_from(fields) for fields in rows]

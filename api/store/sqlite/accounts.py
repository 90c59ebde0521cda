"""Users and classes (with their enrolments) in SQLite."""

from __future__ import annotations

import sqlite3

from ...errors import CLASS_NOT_FOUND, EMAIL_EXISTS, STUDENT_NOT_FOUND, Conflict, NotFound
from ...models import AttendancePolicy, ClassRecord, Role, User
from ...timeutil import iso_ms, utcnow
from ..records import class_fields, class_from, new_class, new_user, user_fields, user_from
from ..rules import TEACHER_NOT_FOUND, normalize_email
from .base import SqliteBase, decode, exists, insert
from .schema import immediate


class SqliteAccounts(SqliteBase):
    """The ``users``, ``classes`` and ``enrolments`` tables."""

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
        user = new_user(
            name=name,
            email=email,
            role=role,
            password_hash=password_hash,
            external_id=external_id,
        )

        def write(conn: sqlite3.Connection) -> None:
            try:
                insert(conn, "users", user_fields(user))
            except sqlite3.IntegrityError as error:
                if "users_email_unique" not in str(error):
                    raise
                raise Conflict(EMAIL_EXISTS) from None

        await self._run(write)
        return user

    async def get_user(self, user_id: str) -> User | None:
        fields = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return user_from(fields) if fields else None

    async def get_user_by_email(self, email: str) -> User | None:
        fields = await self._one(
            "SELECT * FROM users WHERE lower(email) = ?", (normalize_email(email),)
        )
        return user_from(fields) if fields else None

    async def get_user_by_external_id(self, external_id: str) -> User | None:
        fields = await self._one(
            "SELECT * FROM users WHERE external_id = ? ORDER BY created_at, id LIMIT 1",
            (external_id,),
        )
        return user_from(fields) if fields else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )
            return cursor.rowcount == 1

        return await self._run(write)

    async def list_users(self, role: Role) -> list[User]:
        rows = await self._all(
            "SELECT * FROM users WHERE role = ? ORDER BY created_at, id", (role,)
        )
        return [user_from(fields) for fields in rows]

    # -- classes ------------------------------------------------------------
    async def create_class(self, *, class_name: str, teacher_id: str) -> ClassRecord:
        record = new_class(class_name=class_name, teacher_id=teacher_id)
        # A new class has no enrolments; they live in their own table.
        row = {k: v for k, v in class_fields(record).items() if k != "student_ids"}

        def write(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                if not exists(conn, "SELECT 1 FROM users WHERE id = ?", teacher_id):
                    raise NotFound(TEACHER_NOT_FOUND)
                insert(conn, "classes", row)

        await self._run(write)
        return record

    async def get_class(self, class_id: str) -> ClassRecord | None:
        records = await self._run(lambda conn: _classes(conn, "id = ?", class_id))
        return records[0] if records else None

    async def add_student(self, class_id: str, student_id: str) -> ClassRecord:
        def enrol(conn: sqlite3.Connection) -> ClassRecord:
            with immediate(conn):
                if not exists(conn, "SELECT 1 FROM classes WHERE id = ?", class_id):
                    raise NotFound(CLASS_NOT_FOUND)
                if not exists(conn, "SELECT 1 FROM users WHERE id = ?", student_id):
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
        allow_student_screen_share: bool | None = None,
        allow_student_unmute: bool | None = None,
    ) -> ClassRecord:
        ratio = policy.present_ratio if policy is not None else None
        late = policy.late_after_seconds if policy is not None else None

        def update(conn: sqlite3.Connection) -> ClassRecord:
            with immediate(conn):
                # One statement: a NULL parameter keeps the column as it is.
                changed = conn.execute(
                    "UPDATE classes SET present_ratio = coalesce(?, present_ratio),"
                    " late_after_seconds = coalesce(?, late_after_seconds),"
                    " allow_student_recordings = coalesce(?, allow_student_recordings),"
                    " allow_student_screen_share = coalesce(?, allow_student_screen_share),"
                    " allow_student_unmute = coalesce(?, allow_student_unmute)"
                    " WHERE id = ?",
                    (
                        ratio,
                        late,
                        allow_student_recordings,
                        allow_student_screen_share,
                        allow_student_unmute,
                        class_id,
                    ),
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


def _classes(conn: sqlite3.Connection, where: str, value: str) -> list[ClassRecord]:
    """Classes matching ``where`` (a fixed SQL fragment with one ``?``), oldest first,
    each with its students in enrolment order."""
    rows = [
        decode(row)
        for row in conn.execute(
            f"SELECT * FROM classes WHERE {where} ORDER BY created_at, id", (value,)
        ).fetchall()
    ]
    students: dict[str, list[str]] = {fields["id"]: [] for fields in rows}
    for class_id, student_id in conn.execute(
        "SELECT class_id, student_id FROM enrolments"
        f" WHERE class_id IN (SELECT id FROM classes WHERE {where}) ORDER BY position",
        (value,),
    ):
        students[class_id].append(student_id)
    return [class_from({**fields, "student_ids": students[fields["id"]]}) for fields in rows]

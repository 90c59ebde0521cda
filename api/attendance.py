"""Attendance sessions: start, teacher marks, live summary, and the end (``DONE``)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import access
from .errors import NO_ACTIVE_SESSION, Conflict
from .ids import SessionId, UserId
from .models import (
    AttendanceMark,
    AttendanceSession,
    AttendanceStatus,
    ClassRecord,
    SessionSummary,
    User,
)
from .store import Store
from .timeutil import utcnow

log = logging.getLogger(__name__)

SessionEndedHook = Callable[[AttendanceSession], Awaitable[None]]
ATTENDED: frozenset[str] = frozenset({"present", "late"})


class ClassBroadcaster(Protocol):
    """Delivers an event to every WebSocket of a class (implemented by the socket hub)."""

    def broadcast(self, cls: ClassRecord, event: str, data: dict[str, Any]) -> None: ...


class AttendanceService:
    """The attendance rules shared by REST and WebSocket, serialised per class."""

    def __init__(self, store: Store, broadcaster: ClassBroadcaster) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.session_ended_hooks: list[SessionEndedHook] = []

    def _lock(self, class_id: str) -> asyncio.Lock:
        lock = self._locks.get(class_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[class_id] = lock
        return lock

    async def active_session(self, cls: ClassRecord) -> AttendanceSession:
        session = await self._store.get_active_session(cls.id)
        if session is None:
            raise Conflict(NO_ACTIVE_SESSION)
        return session

    async def start(self, teacher: User, cls: ClassRecord) -> AttendanceSession:
        access.require_owner(teacher, cls)
        async with self._lock(cls.id):
            return await self._store.start_session(
                class_id=cls.id, teacher_id=teacher.id, started_at=utcnow()
            )

    async def mark(
        self, teacher: User, cls: ClassRecord, student_id: str, status: AttendanceStatus
    ) -> None:
        """A teacher's mark: stored as an override, then broadcast to the class."""
        access.require_owner(teacher, cls)
        async with self._lock(cls.id):
            session = await self.active_session(cls)
            await self._store.put_mark(
                AttendanceMark(
                    session_id=session.id,
                    class_id=cls.id,
                    student_id=UserId(student_id),
                    status=status,
                    source="teacher",
                    marked_at=utcnow(),
                    marked_by=teacher.id,
                )
            )
        self._broadcaster.broadcast(
            cls, "ATTENDANCE_MARKED", {"studentId": student_id, "status": status}
        )

    async def summary(self, cls: ClassRecord) -> dict[str, int]:
        """Counts over the students who have a status so far in the active session."""
        session = await self.active_session(cls)
        statuses = await self._statuses(session.id, cls)
        present = sum(1 for status in statuses.values() if status in ATTENDED)
        absent = sum(1 for status in statuses.values() if status == "absent")
        return {"present": present, "absent": absent, "total": present + absent}

    async def live_status(self, student: User, cls: ClassRecord) -> str | None:
        """The student's status in the active session so far, ``None`` if not yet set."""
        access.require_enrolled(student, cls)
        session = await self.active_session(cls)
        mark = await self._store.get_mark(session.id, student.id)
        return mark.status if mark else None

    async def last_status(self, student: User, cls: ClassRecord) -> str | None:
        """The student's status in the class's latest finished session, ``None`` if none."""
        access.require_enrolled(student, cls)
        session = await self._store.latest_ended_session(cls.id)
        if session is None:
            return None
        mark = await self._store.get_mark(session.id, student.id)
        return mark.status if mark else None

    async def end(self, teacher: User, cls: ClassRecord) -> SessionSummary:
        """Finalise: unmarked enrolled students become absent, the session is persisted and
        ended, ``DONE`` is broadcast, then the session-ended hooks run (media teardown)."""
        access.require_owner(teacher, cls)
        async with self._lock(cls.id):
            session = await self.active_session(cls)
            statuses = await self._statuses(session.id, cls)
            now = utcnow()
            for student_id in cls.student_ids:
                if student_id not in statuses:
                    await self._store.put_mark(
                        AttendanceMark(
                            session_id=session.id,
                            class_id=cls.id,
                            student_id=student_id,
                            status="absent",
                            source="auto",
                            marked_at=now,
                        )
                    )
                    statuses[student_id] = "absent"
            enrolled = [statuses[student_id] for student_id in cls.student_ids]
            summary = SessionSummary(
                present=sum(1 for status in enrolled if status in ATTENDED),
                absent=sum(1 for status in enrolled if status == "absent"),
                late=sum(1 for status in enrolled if status == "late"),
                total=len(cls.student_ids),
            )
            ended = await self._store.end_session(session.id, ended_at=now, summary=summary)
        self._broadcaster.broadcast(
            cls, "DONE", {"message": "Attendance persisted", **summary.as_dict()}
        )
        for hook in self.session_ended_hooks:
            try:
                await hook(ended)
            except Exception:
                log.exception("session-ended hook failed for session %s", ended.id)
        return summary

    async def _statuses(self, session_id: SessionId, cls: ClassRecord) -> dict[UserId, str]:
        """Marks of currently enrolled students only."""
        enrolled = set(cls.student_ids)
        return {
            mark.student_id: mark.status
            for mark in await self._store.list_marks(session_id)
            if mark.student_id in enrolled
        }

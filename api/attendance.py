"""Attendance sessions: start, teacher marks, live status and summary, and the end (``DONE``).

Statuses come from :mod:`api.presence.report`: a teacher's mark wins, otherwise presence
decides (provisionally while the session runs, by the class's policy at the end).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from . import access
from .errors import NO_ACTIVE_SESSION, Conflict
from .ids import UserId
from .models import (
    AttendanceMark,
    AttendanceSession,
    AttendanceStatus,
    ClassRecord,
    PresenceEvent,
    SessionSummary,
    User,
)
from .presence.report import StudentAttendance, session_report
from .store import Store
from .timeutil import utcnow

log = logging.getLogger(__name__)

SessionHook = Callable[[AttendanceSession], Awaitable[None]]
ATTENDED: frozenset[str] = frozenset({"present", "late"})


def _was_in_room(events: Sequence[PresenceEvent], start: datetime, until: datetime) -> bool:
    """True if one connection of `events` (as `presence_intervals` pairs them) overlaps
    ``[start, until)``: then the merged intervals do too and a live status is ``present``.
    Usually the first connection answers, where the intervals would take every event."""
    opened: datetime | None = None
    for event in events:
        if event.kind == "connected":
            if opened is None:
                opened = event.at
        elif opened is not None:
            if max(opened, start) < min(event.at, until):
                return True
            opened = None
    return opened is not None and max(opened, start) < until


def live_status_of(
    session: AttendanceSession,
    cls: ClassRecord,
    student: UserId,
    events: Sequence[PresenceEvent],
    *,
    until: datetime,
    grace: timedelta,
) -> AttendanceStatus | None:
    """`session_report`'s live status of a student no teacher has marked, from the
    student's presence `events`; usually without building the intervals."""
    if _was_in_room(events, session.started_at, until):
        return "present"
    rows = session_report(
        session, cls.policy, [student], events, (), (), until=until, grace=grace, final=False
    )
    return rows[0].status


class ClassBroadcaster(Protocol):
    """Delivers an event to every WebSocket of a class (implemented by the socket hub)."""

    def broadcast(self, cls: ClassRecord, event: str, data: dict[str, Any]) -> None: ...


class AttendanceService:
    """The attendance rules shared by REST and WebSocket, serialised per class."""

    def __init__(
        self,
        store: Store,
        broadcaster: ClassBroadcaster,
        *,
        grace: timedelta = timedelta(seconds=15),
    ) -> None:
        self._store = store
        self._broadcaster = broadcaster
        self._grace = grace
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.session_started_hooks: list[SessionHook] = []
        """Run once a session has started (a cluster places its room); a failure is logged,
        the session stays started."""
        self.presence_closers: list[SessionHook] = []
        """Run before statuses are final: they write the last presence (rooms' trackers)."""
        self.session_ended_hooks: list[SessionHook] = []
        """Run after ``DONE`` was broadcast (media teardown)."""
        self.marked_hooks: list[Callable[[ClassRecord], None]] = []

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
            session = await self._store.start_session(
                class_id=cls.id, teacher_id=teacher.id, started_at=utcnow()
            )
        for hook in self.session_started_hooks:
            try:
                await hook(session)
            except Exception:
                log.exception("session-started hook failed for session %s", session.id)
        return session

    async def mark(
        self, teacher: User, cls: ClassRecord, student_id: str, status: AttendanceStatus
    ) -> None:
        """A teacher's mark: stored as an override (who, when), then broadcast."""
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
        for hook in self.marked_hooks:
            hook(cls)

    async def report(
        self,
        session: AttendanceSession,
        cls: ClassRecord,
        *,
        until: datetime | None = None,
        final: bool = False,
        student: UserId | None = None,
    ) -> list[StudentAttendance]:
        """Every enrolled student's attendance in ``session`` (live unless ``final``), or
        only `student`'s: then only that student's presence is read."""
        if until is None:
            until = session.ended_at or utcnow()
        store = self._store
        events = await store.list_presence_events(session.id, student)
        counters = await store.list_presence_counters(session.id, student)
        if student is None:
            marks = await store.list_marks(session.id)
        else:
            mark = await store.get_mark(session.id, student)
            marks = [] if mark is None else [mark]
        return session_report(
            session,
            cls.policy,
            cls.student_ids if student is None else [student],
            events,
            counters,
            marks,
            until=until,
            grace=self._grace,
            final=final,
        )

    async def summary(self, cls: ClassRecord) -> dict[str, int]:
        """Counts over the students who have a status so far in the active session."""
        rows = await self.report(await self.active_session(cls), cls)
        present = sum(1 for row in rows if row.status in ATTENDED)
        absent = sum(1 for row in rows if row.status == "absent")
        return {"present": present, "absent": absent, "total": present + absent}

    async def live_status(self, student: User, cls: ClassRecord) -> str | None:
        """The student's status in the active session so far, ``None`` if not yet set."""
        access.require_enrolled(student, cls)
        session = await self.active_session(cls)
        mark = await self._store.get_mark(session.id, student.id)
        if mark is not None and mark.source == "teacher":
            return mark.status  # a teacher's mark wins: the presence is not read
        events = await self._store.list_presence_events(session.id, student.id)
        return live_status_of(
            session, cls, UserId(student.id), events, until=utcnow(), grace=self._grace
        )

    async def last_status(self, student: User, cls: ClassRecord) -> str | None:
        """The student's status in the class's latest finished session, ``None`` if none."""
        access.require_enrolled(student, cls)
        session = await self._store.latest_ended_session(cls.id)
        if session is None:
            return None
        mark = await self._store.get_mark(session.id, student.id)
        return mark.status if mark else None

    async def end(self, teacher: User, cls: ClassRecord) -> SessionSummary:
        """Finalise: presence is closed, every enrolled student gets a final status and
        detail, the session is ended, ``DONE`` is broadcast, then media is torn down."""
        access.require_owner(teacher, cls)
        async with self._lock(cls.id):
            session = await self.active_session(cls)
            for close_presence in self.presence_closers:
                await close_presence(session)
            now = utcnow()
            rows = await self.report(session, cls, until=now, final=True)
            for row in rows:
                assert row.status is not None
                await self._store.put_mark(
                    AttendanceMark(
                        session_id=session.id,
                        class_id=cls.id,
                        student_id=row.student_id,
                        status=row.status,
                        source=row.source or "presence",
                        marked_at=row.marked_at or now,
                        marked_by=row.marked_by,
                        extra=row.detail(),
                    )
                )
            summary = SessionSummary(
                present=sum(1 for row in rows if row.status in ATTENDED),
                absent=sum(1 for row in rows if row.status == "absent"),
                late=sum(1 for row in rows if row.status == "late"),
                total=len(rows),
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

"""Attendance sessions and marks in MongoDB (``sessions``, ``active_sessions``, ``marks``).

Crash recovery. Starting writes the pointer, then the session; ending ends the session, then
deletes the pointer. A session is active exactly when a pointer names it and it has not
ended, so a crash between the steps leaves a pointer that readers ignore:

- a pointer naming a missing session (crash while starting) is deleted by the next
  ``start_session`` once it is older than ``STALE_POINTER_AFTER``; a younger one may belong
  to a start still in progress, so it still counts as a conflict;
- a pointer naming an ended session (crash while ending) is deleted by the next
  ``start_session`` straight away.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ...errors import CLASS_NOT_FOUND, NO_ACTIVE_SESSION, SESSION_ALREADY_ACTIVE, Conflict, NotFound
from ...models import AttendanceMark, AttendanceSession, SessionSummary
from ...timeutil import utcnow
from ..records import mark_fields, mark_from, new_session, session_fields, session_from
from ..rules import SESSION_NOT_FOUND, TEACHER_NOT_FOUND, stored_moment
from .base import MongoBase
from .documents import by_id, from_doc, oid, to_doc

STALE_POINTER_AFTER = timedelta(seconds=30)


class MongoSessions(MongoBase):
    """Sessions with their one-per-class ``active_sessions`` pointer, and one mark
    document per (session, student)."""

    # -- attendance sessions ------------------------------------------------
    async def start_session(
        self, *, class_id: str, teacher_id: str, started_at: datetime
    ) -> AttendanceSession:
        if await by_id(self._classes, class_id) is None:
            raise NotFound(CLASS_NOT_FOUND)
        if await by_id(self._users, teacher_id) is None:
            raise NotFound(TEACHER_NOT_FOUND)
        class_oid = ObjectId(class_id)
        session = new_session(class_id=class_id, teacher_id=teacher_id, started_at=started_at)
        pointer = {"_id": class_oid, "sessionId": session.id, "createdAt": utcnow()}
        try:
            await self._active.insert_one(pointer)
        except DuplicateKeyError:
            if not await self._delete_stale_pointer(class_oid):
                raise Conflict(SESSION_ALREADY_ACTIVE) from None
            try:
                await self._active.insert_one(pointer)
            except DuplicateKeyError:
                raise Conflict(SESSION_ALREADY_ACTIVE) from None
        await self._sessions.insert_one(to_doc(session_fields(session)))
        return session

    async def _delete_stale_pointer(self, class_oid: ObjectId) -> bool:
        """Delete the class's pointer if it names no active session; True if it is gone."""
        pointer = await self._active.find_one({"_id": class_oid})
        if pointer is None:
            return True
        session = await by_id(self._sessions, pointer["sessionId"])
        if session is None:
            stale = utcnow() - pointer["createdAt"] > STALE_POINTER_AFTER
        else:
            stale = session["endedAt"] is not None
        if not stale:
            return False
        # Matching the session id too: never delete a pointer another start just wrote.
        await self._active.delete_one({"_id": class_oid, "sessionId": pointer["sessionId"]})
        return True

    async def place_session(self, session_id: str, node_id: str) -> None:
        doc = await by_id(self._sessions, session_id)
        if doc is None:
            raise NotFound(SESSION_NOT_FOUND)
        session = session_from(from_doc(doc))
        placed = replace(session, node_id=node_id)
        # A whole-document replace, as in end_session (nx-27017 and $set's dates).
        result = await self._sessions.replace_one(
            {"_id": doc["_id"], "endedAt": None}, to_doc(session_fields(placed))
        )
        if result.matched_count == 0:
            raise Conflict(NO_ACTIVE_SESSION)

    async def get_session(self, session_id: str) -> AttendanceSession | None:
        doc = await by_id(self._sessions, session_id)
        return session_from(from_doc(doc)) if doc else None

    async def get_active_session(self, class_id: str) -> AttendanceSession | None:
        class_oid = oid(class_id)
        pointer = await self._active.find_one({"_id": class_oid}) if class_oid else None
        if pointer is None:
            return None
        session = await self.get_session(pointer["sessionId"])
        return session if session is not None and session.is_active else None

    async def list_active_sessions(self) -> list[AttendanceSession]:
        pointers = await self._active.find({}).to_list()
        session_oids = [ObjectId(pointer["sessionId"]) for pointer in pointers]
        docs = await (
            self._sessions.find({"_id": {"$in": session_oids}, "endedAt": None})
            .sort([("startedAt", ASCENDING), ("_id", ASCENDING)])
            .to_list()
        )
        return [session_from(from_doc(doc)) for doc in docs]

    async def list_sessions(self, class_id: str) -> list[AttendanceSession]:
        docs = await (
            self._sessions.find({"classId": class_id})
            .sort([("startedAt", DESCENDING), ("_id", DESCENDING)])
            .to_list()
        )
        return [session_from(from_doc(doc)) for doc in docs]

    async def latest_ended_session(self, class_id: str) -> AttendanceSession | None:
        doc = await self._sessions.find_one(
            {"classId": class_id, "endedAt": {"$ne": None}},
            sort=[("endedAt", DESCENDING), ("_id", DESCENDING)],
        )
        return session_from(from_doc(doc)) if doc else None

    async def end_session(
        self, session_id: str, *, ended_at: datetime, summary: SessionSummary
    ) -> AttendanceSession:
        doc = await by_id(self._sessions, session_id)
        if doc is None:
            raise NotFound(SESSION_NOT_FOUND)
        session = session_from(from_doc(doc))
        if not session.is_active:
            raise Conflict(NO_ACTIVE_SESSION)
        ended = replace(session, ended_at=stored_moment(ended_at), summary=summary)
        # A whole-document replace, not $set, so endedAt stays a date on nx-27017; the
        # endedAt filter makes it a compare-and-swap against a concurrent end.
        result = await self._sessions.replace_one(
            {"_id": doc["_id"], "endedAt": None}, to_doc(session_fields(ended))
        )
        if result.matched_count == 0:
            raise Conflict(NO_ACTIVE_SESSION)
        await self._active.delete_one({"_id": ObjectId(session.class_id), "sessionId": session.id})
        return ended

    # -- marks --------------------------------------------------------------
    async def put_mark(self, mark: AttendanceMark) -> None:
        if await by_id(self._sessions, mark.session_id) is None:
            raise NotFound(SESSION_NOT_FOUND)
        key = {"sessionId": mark.session_id, "studentId": mark.student_id}
        doc = to_doc(mark_fields(replace(mark, marked_at=stored_moment(mark.marked_at))))
        try:
            await self._marks.replace_one(key, doc, upsert=True)
        except DuplicateKeyError:
            # Two upserts of the same new mark raced; the document exists now, so replace it.
            await self._marks.replace_one(key, doc, upsert=True)

    async def get_mark(self, session_id: str, student_id: str) -> AttendanceMark | None:
        doc = await self._marks.find_one({"sessionId": session_id, "studentId": student_id})
        return mark_from(from_doc(doc)) if doc else None

    async def list_marks(self, session_id: str) -> list[AttendanceMark]:
        docs = await (
            self._marks.find({"sessionId": session_id})
            .sort([("markedAt", ASCENDING), ("studentId", ASCENDING)])
            .to_list()
        )
        return [mark_from(from_doc(doc)) for doc in docs]

    async def list_marks_for_student(self, class_id: str, student_id: str) -> list[AttendanceMark]:
        marks = await self._marks.find({"classId": class_id, "studentId": student_id}).to_list()
        if not marks:
            return []
        session_oids = [ObjectId(doc["sessionId"]) for doc in marks]
        sessions = await self._sessions.find(
            {"_id": {"$in": session_oids}}, {"startedAt": True}
        ).to_list()
        started = {str(doc["_id"]): doc["startedAt"] for doc in sessions}
        # Newest session first, ties by session id, as list_sessions orders them. A mark
        # whose session is missing cannot happen (put_mark checks); it would sort last.
        oldest = datetime.min.replace(tzinfo=UTC)
        marks.sort(
            key=lambda doc: (started.get(doc["sessionId"], oldest), doc["sessionId"]),
            reverse=True,
        )
        return [mark_from(from_doc(doc)) for doc in marks]

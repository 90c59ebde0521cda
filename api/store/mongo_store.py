"""The MongoDB backend, through PyMongo Async (``AsyncMongoClient``).

The documents are designed to be read and written the same way by MongoDB and by nx-27017
(the SQLite-backed server the tests run against), whose gaps are pinned in
``tests/store/test_nx27017_gaps.py``:

- Each document's ``_id`` is a real ``ObjectId``, a 24-hex string at the boundary; a malformed
  id reads as "no such record".
- References to other documents (``teacherId``, ``studentIds``, ``classId``, ``sessionId``, ...)
  are 24-hex strings: nx-27017 never matches an ``ObjectId`` value in a filter on any field
  but ``_id``.
- Dates are written only by inserts and whole-document replaces: nx-27017 stores a datetime
  written by an update operator (``$set``, ``$min``) as a naive string.
- Array membership is asked with ``$elemMatch``: nx-27017 finds nothing by element equality
  on an indexed array.
- No ``$setOnInsert``, positional ``$``, ``arrayFilters``, ``$lookup``, ``$push`` of
  subdocuments, and no unique index on a field that may be missing.

Collections: ``users`` (unique ``email``, stored lowercased), ``classes`` (``studentIds`` is a
top-level array grown with ``$addToSet``; ``policy`` and ``allowStudentRecordings`` read as
the defaults when missing, as in documents written before they existed; ``rev`` counts
changes so a settings update can be a compare-and-swap), ``sessions``, ``active_sessions``
(one pointer per class whose ``_id`` is the class id, so the uniqueness of ``_id`` is the
"one active session per class" rule), ``marks`` (one document per (session, student), unique
compound index, replaced with ``upsert``), ``presence_events`` (insert-only, ordered by a
per-session ``seq`` drawn from ``presence_seq``, not from the session document, which
``end_session`` replaces whole) and ``presence_counters`` (one document per
(session, user), unique compound index, replaced with ``upsert``).

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

import asyncio
import weakref
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from ..errors import (
    CLASS_NOT_FOUND,
    EMAIL_EXISTS,
    NO_ACTIVE_SESSION,
    SESSION_ALREADY_ACTIVE,
    STUDENT_NOT_FOUND,
    Conflict,
    NotFound,
)
from ..ids import ClassId, RoomId, SessionId, UserId, is_object_id, new_id
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

Doc = dict[str, Any]

STALE_POINTER_AFTER = timedelta(seconds=30)
_OLDEST_FIRST = [("createdAt", ASCENDING), ("_id", ASCENDING)]

_INDEXES: dict[str, list[IndexModel]] = {
    "users": [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        IndexModel([("role", ASCENDING), ("createdAt", ASCENDING)], name="role_created"),
        IndexModel([("externalId", ASCENDING)], name="external_id"),
    ],
    "classes": [
        IndexModel([("teacherId", ASCENDING), ("createdAt", ASCENDING)], name="teacher_created"),
        IndexModel([("studentIds", ASCENDING)], name="student_ids"),
    ],
    "sessions": [
        IndexModel([("classId", ASCENDING), ("startedAt", DESCENDING)], name="class_started"),
    ],
    "marks": [
        IndexModel(
            [("sessionId", ASCENDING), ("studentId", ASCENDING)],
            unique=True,
            name="session_student_unique",
        ),
        IndexModel([("classId", ASCENDING), ("studentId", ASCENDING)], name="class_student"),
    ],
    "presence_events": [
        IndexModel(
            [("sessionId", ASCENDING), ("seq", ASCENDING)], unique=True, name="session_seq_unique"
        ),
    ],
    "recordings": [
        IndexModel([("classId", ASCENDING), ("startedAt", DESCENDING)], name="by_class"),
    ],
    "presence_counters": [
        IndexModel(
            [("sessionId", ASCENDING), ("userId", ASCENDING)],
            unique=True,
            name="session_user_unique",
        ),
    ],
}


class MongoStore(Store):
    """A :class:`Store` in one MongoDB database; chosen when ``MONGODB_URI`` is set."""

    def __init__(self, uri: str, db_name: str) -> None:
        self._uri = uri
        self._db_name = db_name
        self._client: AsyncMongoClient[Doc] | None = None
        # One lock per session with appends in flight, so that concurrent appends draw their
        # sequence numbers in call order; a lock goes away with its last user.
        self._append_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient[Doc] = AsyncMongoClient(self._uri, tz_aware=True, tzinfo=UTC)
        try:
            for name, indexes in _INDEXES.items():
                await client[self._db_name][name].create_indexes(indexes)
        except BaseException:
            await client.close()
            raise
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _col(self, name: str) -> AsyncCollection[Doc]:
        if self._client is None:
            raise RuntimeError("MongoStore is not open")
        return self._client[self._db_name][name]

    @property
    def _users(self) -> AsyncCollection[Doc]:
        return self._col("users")

    @property
    def _classes(self) -> AsyncCollection[Doc]:
        return self._col("classes")

    @property
    def _sessions(self) -> AsyncCollection[Doc]:
        return self._col("sessions")

    @property
    def _active(self) -> AsyncCollection[Doc]:
        return self._col("active_sessions")

    @property
    def _marks(self) -> AsyncCollection[Doc]:
        return self._col("marks")

    @property
    def _presence_events(self) -> AsyncCollection[Doc]:
        return self._col("presence_events")

    @property
    def _presence_seq(self) -> AsyncCollection[Doc]:
        return self._col("presence_seq")

    @property
    def _presence_counters(self) -> AsyncCollection[Doc]:
        return self._col("presence_counters")

    @property
    def _recordings(self) -> AsyncCollection[Doc]:
        return self._col("recordings")

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
        try:
            await self._users.insert_one(_user_doc(user))
        except DuplicateKeyError:
            raise Conflict(EMAIL_EXISTS) from None
        return user

    async def get_user(self, user_id: str) -> User | None:
        doc = await _by_id(self._users, user_id)
        return _user(doc) if doc else None

    async def get_user_by_email(self, email: str) -> User | None:
        doc = await self._users.find_one({"email": normalize_email(email)})
        return _user(doc) if doc else None

    async def get_user_by_external_id(self, external_id: str) -> User | None:
        doc = await self._users.find_one({"externalId": external_id}, sort=_OLDEST_FIRST)
        return _user(doc) if doc else None

    async def list_users(self, role: Role) -> list[User]:
        docs = await self._users.find({"role": role}).sort(_OLDEST_FIRST).to_list()
        return [_user(doc) for doc in docs]

    # -- classes ------------------------------------------------------------
    async def create_class(self, *, class_name: str, teacher_id: str) -> ClassRecord:
        if await _by_id(self._users, teacher_id) is None:
            raise NotFound(TEACHER_NOT_FOUND)
        record = ClassRecord(
            id=ClassId(new_id()),
            class_name=class_name,
            teacher_id=UserId(teacher_id),
            student_ids=(),
            created_at=utcnow(),
        )
        await self._classes.insert_one(_class_doc(record))
        return record

    async def get_class(self, class_id: str) -> ClassRecord | None:
        doc = await _by_id(self._classes, class_id)
        return _class(doc) if doc else None

    async def add_student(self, class_id: str, student_id: str) -> ClassRecord:
        if await _by_id(self._classes, class_id) is None:
            raise NotFound(CLASS_NOT_FOUND)
        if await _by_id(self._users, student_id) is None:
            raise NotFound(STUDENT_NOT_FOUND)
        doc = await self._classes.find_one_and_update(
            {"_id": ObjectId(class_id)},
            {"$addToSet": {"studentIds": student_id}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound(CLASS_NOT_FOUND)
        return _class(doc)

    async def update_class_settings(
        self,
        class_id: str,
        *,
        policy: AttendancePolicy | None = None,
        allow_student_recordings: bool | None = None,
    ) -> ClassRecord:
        while True:
            doc = await _by_id(self._classes, class_id)
            if doc is None:
                raise NotFound(CLASS_NOT_FOUND)
            current = _class(doc)
            updated = replace(
                current,
                policy=current.policy if policy is None else policy,
                allow_student_recordings=current.allow_student_recordings
                if allow_student_recordings is None
                else allow_student_recordings,
            )
            # A whole-document replace keeps createdAt a date on nx-27017 (no $set); matching
            # the revision read makes it a compare-and-swap, so an enrolment or another
            # settings change that landed in between is re-read rather than overwritten.
            # ``"rev": None`` also matches a document written before ``rev`` existed.
            rev = doc.get("rev")
            new_doc = {**_class_doc(updated), "rev": (rev or 0) + 1}
            result = await self._classes.replace_one({"_id": doc["_id"], "rev": rev}, new_doc)
            if result.matched_count == 1:
                return _class(new_doc)

    async def list_classes_for_teacher(self, teacher_id: str) -> list[ClassRecord]:
        docs = await self._classes.find({"teacherId": teacher_id}).sort(_OLDEST_FIRST).to_list()
        return [_class(doc) for doc in docs]

    async def list_classes_for_student(self, student_id: str) -> list[ClassRecord]:
        # $elemMatch rather than {"studentIds": id}: nx-27017 finds nothing by element equality
        # once the array is indexed. MongoDB answers both from the same multikey index.
        enrolled = {"studentIds": {"$elemMatch": {"$eq": student_id}}}
        docs = await self._classes.find(enrolled).sort(_OLDEST_FIRST).to_list()
        return [_class(doc) for doc in docs]

    # -- attendance sessions ------------------------------------------------
    async def start_session(
        self, *, class_id: str, teacher_id: str, started_at: datetime
    ) -> AttendanceSession:
        if await _by_id(self._classes, class_id) is None:
            raise NotFound(CLASS_NOT_FOUND)
        if await _by_id(self._users, teacher_id) is None:
            raise NotFound(TEACHER_NOT_FOUND)
        class_oid = ObjectId(class_id)
        session = AttendanceSession(
            id=SessionId(new_id()),
            class_id=ClassId(class_id),
            room_id=RoomId(new_id()),
            teacher_id=UserId(teacher_id),
            started_at=stored_moment(started_at),
        )
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
        await self._sessions.insert_one(_session_doc(session))
        return session

    async def _delete_stale_pointer(self, class_oid: ObjectId) -> bool:
        """Delete the class's pointer if it names no active session; True if it is gone."""
        pointer = await self._active.find_one({"_id": class_oid})
        if pointer is None:
            return True
        session = await _by_id(self._sessions, pointer["sessionId"])
        if session is None:
            stale = utcnow() - pointer["createdAt"] > STALE_POINTER_AFTER
        else:
            stale = session["endedAt"] is not None
        if not stale:
            return False
        # Matching the session id too: never delete a pointer another start just wrote.
        await self._active.delete_one({"_id": class_oid, "sessionId": pointer["sessionId"]})
        return True

    async def get_session(self, session_id: str) -> AttendanceSession | None:
        doc = await _by_id(self._sessions, session_id)
        return _session(doc) if doc else None

    async def get_active_session(self, class_id: str) -> AttendanceSession | None:
        class_oid = _oid(class_id)
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
        return [_session(doc) for doc in docs]

    async def list_sessions(self, class_id: str) -> list[AttendanceSession]:
        docs = await (
            self._sessions.find({"classId": class_id})
            .sort([("startedAt", DESCENDING), ("_id", DESCENDING)])
            .to_list()
        )
        return [_session(doc) for doc in docs]

    async def latest_ended_session(self, class_id: str) -> AttendanceSession | None:
        doc = await self._sessions.find_one(
            {"classId": class_id, "endedAt": {"$ne": None}},
            sort=[("endedAt", DESCENDING), ("_id", DESCENDING)],
        )
        return _session(doc) if doc else None

    async def end_session(
        self, session_id: str, *, ended_at: datetime, summary: SessionSummary
    ) -> AttendanceSession:
        doc = await _by_id(self._sessions, session_id)
        if doc is None:
            raise NotFound(SESSION_NOT_FOUND)
        session = _session(doc)
        if not session.is_active:
            raise Conflict(NO_ACTIVE_SESSION)
        ended = replace(session, ended_at=stored_moment(ended_at), summary=summary)
        # A whole-document replace, not $set, so endedAt stays a date on nx-27017; the
        # endedAt filter makes it a compare-and-swap against a concurrent end.
        result = await self._sessions.replace_one(
            {"_id": doc["_id"], "endedAt": None}, _session_doc(ended)
        )
        if result.matched_count == 0:
            raise Conflict(NO_ACTIVE_SESSION)
        await self._active.delete_one({"_id": ObjectId(session.class_id), "sessionId": session.id})
        return ended

    # -- marks --------------------------------------------------------------
    async def put_mark(self, mark: AttendanceMark) -> None:
        if await _by_id(self._sessions, mark.session_id) is None:
            raise NotFound(SESSION_NOT_FOUND)
        key = {"sessionId": mark.session_id, "studentId": mark.student_id}
        doc = _mark_doc(replace(mark, marked_at=stored_moment(mark.marked_at)))
        try:
            await self._marks.replace_one(key, doc, upsert=True)
        except DuplicateKeyError:
            # Two upserts of the same new mark raced; the document exists now, so replace it.
            await self._marks.replace_one(key, doc, upsert=True)

    async def get_mark(self, session_id: str, student_id: str) -> AttendanceMark | None:
        doc = await self._marks.find_one({"sessionId": session_id, "studentId": student_id})
        return _mark(doc) if doc else None

    async def list_marks(self, session_id: str) -> list[AttendanceMark]:
        docs = await (
            self._marks.find({"sessionId": session_id})
            .sort([("markedAt", ASCENDING), ("studentId", ASCENDING)])
            .to_list()
        )
        return [_mark(doc) for doc in docs]

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
        return [_mark(doc) for doc in marks]

    # -- presence -------------------------------------------------------------
    async def append_presence_event(self, event: PresenceEvent) -> None:
        doc = _presence_event_doc(replace(event, at=stored_moment(event.at)))
        lock = self._append_locks.get(event.session_id)
        if lock is None:
            lock = self._append_locks[event.session_id] = asyncio.Lock()
        async with lock:
            # The sequence number comes from the server, so the order is exact even across
            # processes and restarts, whatever the clocks and ObjectId counters do. A crash
            # between the two writes leaves a gap in seq, which orders the same.
            counter = await self._presence_seq.find_one_and_update(
                {"_id": event.session_id},
                {"$inc": {"last": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if counter is None:  # an upsert returning AFTER always has a document
                raise RuntimeError("presence sequence upsert returned nothing")
            await self._presence_events.insert_one({**doc, "seq": counter["last"]})

    async def list_presence_events(self, session_id: str) -> list[PresenceEvent]:
        docs = await (
            self._presence_events.find({"sessionId": session_id})
            .sort([("seq", ASCENDING)])
            .to_list()
        )
        return [_presence_event(doc) for doc in docs]

    async def put_presence_counters(self, counters: PresenceCounters) -> None:
        # One replace_one upsert, no read first: this runs about once a second per participant.
        key = {"sessionId": counters.session_id, "userId": counters.user_id}
        doc = _presence_counters_doc(
            replace(counters, last_seen_at=stored_moment(counters.last_seen_at))
        )
        try:
            await self._presence_counters.replace_one(key, doc, upsert=True)
        except DuplicateKeyError:
            # Two upserts of the same new document raced; it exists now, so replace it.
            await self._presence_counters.replace_one(key, doc, upsert=True)

    async def list_presence_counters(self, session_id: str) -> list[PresenceCounters]:
        docs = await (
            self._presence_counters.find({"sessionId": session_id})
            .sort([("userId", ASCENDING)])
            .to_list()
        )
        return [_presence_counters(doc) for doc in docs]

    # -- recordings -----------------------------------------------------------
    async def put_recording(self, recording: Recording) -> None:
        await put_recording(self._recordings, recording)

    async def get_recording(self, recording_id: str) -> Recording | None:
        doc = await _by_id(self._recordings, recording_id)
        return _recording(doc) if doc is not None else None

    async def list_recordings(self, class_id: str) -> list[Recording]:
        docs = await (
            self._recordings.find({"classId": class_id})
            .sort([("startedAt", DESCENDING), ("_id", DESCENDING)])
            .to_list()
        )
        return [_recording(doc) for doc in docs]

    async def list_unfinished_recordings(self) -> list[Recording]:
        unfinished = {
            "$or": [{"status": "recording"}, {"job.status": {"$in": ["pending", "running"]}}]
        }
        docs = await (
            self._recordings.find(unfinished)
            .sort([("startedAt", ASCENDING), ("_id", ASCENDING)])
            .to_list()
        )
        return [_recording(doc) for doc in docs]

    async def delete_recording(self, recording_id: str) -> bool:
        oid = _oid(recording_id)
        if oid is None:
            return False
        result = await self._recordings.delete_one({"_id": oid})
        return result.deleted_count > 0


def _oid(value: str) -> ObjectId | None:
    """The ObjectId an id string names; ``None`` unless it is the canonical lowercase form
    we hand out (SQLite compares the text, so ``"AB…"`` must not find ``"ab…"`` here either)."""
    return ObjectId(value) if is_object_id(value) and value == value.lower() else None


async def _by_id(collection: AsyncCollection[Doc], record_id: str) -> Doc | None:
    oid = _oid(record_id)
    return await collection.find_one({"_id": oid}) if oid is not None else None


def _user_doc(user: User) -> Doc:
    doc: Doc = {
        "_id": ObjectId(user.id),
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "createdAt": user.created_at,
    }
    if user.password_hash is not None:
        doc["passwordHash"] = user.password_hash
    if user.external_id is not None:
        doc["externalId"] = user.external_id
    return doc


def _user(doc: Doc) -> User:
    return User(
        id=UserId(str(doc["_id"])),
        name=doc["name"],
        email=doc["email"],
        role=doc["role"],
        created_at=doc["createdAt"],
        password_hash=doc.get("passwordHash"),
        external_id=doc.get("externalId"),
    )


def _class_doc(record: ClassRecord) -> Doc:
    return {
        "_id": ObjectId(record.id),
        "className": record.class_name,
        "teacherId": record.teacher_id,
        "studentIds": list(record.student_ids),
        "createdAt": record.created_at,
        "policy": {
            "presentRatio": record.policy.present_ratio,
            "lateAfterSeconds": record.policy.late_after_seconds,
        },
        "allowStudentRecordings": record.allow_student_recordings,
    }


def _class(doc: Doc) -> ClassRecord:
    return ClassRecord(
        id=ClassId(str(doc["_id"])),
        class_name=doc["className"],
        teacher_id=UserId(doc["teacherId"]),
        student_ids=tuple(UserId(student_id) for student_id in doc["studentIds"]),
        created_at=doc["createdAt"],
        policy=_policy(doc.get("policy")),
        allow_student_recordings=bool(doc.get("allowStudentRecordings", False)),
    )


def _policy(doc: Doc | None) -> AttendancePolicy:
    """The stored policy; a missing document or field reads as the default."""
    default = AttendancePolicy()
    if doc is None:
        return default
    return AttendancePolicy(
        present_ratio=float(doc.get("presentRatio", default.present_ratio)),
        late_after_seconds=int(doc.get("lateAfterSeconds", default.late_after_seconds)),
    )


def _session_doc(session: AttendanceSession) -> Doc:
    summary = session.summary
    return {
        "_id": ObjectId(session.id),
        "classId": session.class_id,
        "roomId": session.room_id,
        "teacherId": session.teacher_id,
        "startedAt": session.started_at,
        "endedAt": session.ended_at,
        "summary": None
        if summary is None
        else {
            "present": summary.present,
            "absent": summary.absent,
            "total": summary.total,
            "late": summary.late,
        },
    }


def _session(doc: Doc) -> AttendanceSession:
    summary = doc["summary"]
    return AttendanceSession(
        id=SessionId(str(doc["_id"])),
        class_id=ClassId(doc["classId"]),
        room_id=RoomId(doc["roomId"]),
        teacher_id=UserId(doc["teacherId"]),
        started_at=doc["startedAt"],
        ended_at=doc["endedAt"],
        summary=None if summary is None else SessionSummary(**summary),
    )


def _mark_doc(mark: AttendanceMark) -> Doc:
    return {
        "sessionId": mark.session_id,
        "studentId": mark.student_id,
        "classId": mark.class_id,
        "status": mark.status,
        "source": mark.source,
        "markedAt": mark.marked_at,
        "markedBy": mark.marked_by,
        "extra": mark.extra,
    }


def _mark(doc: Doc) -> AttendanceMark:
    return AttendanceMark(
        session_id=SessionId(doc["sessionId"]),
        class_id=ClassId(doc["classId"]),
        student_id=UserId(doc["studentId"]),
        status=doc["status"],
        source=doc["source"],
        marked_at=doc["markedAt"],
        marked_by=UserId(doc["markedBy"]) if doc["markedBy"] is not None else None,
        extra=doc["extra"],
    )


def _presence_event_doc(event: PresenceEvent) -> Doc:
    return {
        "sessionId": event.session_id,
        "classId": event.class_id,
        "userId": event.user_id,
        "kind": event.kind,
        "at": event.at,
        "reason": event.reason,
    }


def _presence_event(doc: Doc) -> PresenceEvent:
    return PresenceEvent(
        session_id=SessionId(doc["sessionId"]),
        class_id=ClassId(doc["classId"]),
        user_id=UserId(doc["userId"]),
        kind=doc["kind"],
        at=doc["at"],
        reason=doc["reason"],
    )


def _presence_counters_doc(counters: PresenceCounters) -> Doc:
    return {
        "sessionId": counters.session_id,
        "userId": counters.user_id,
        "classId": counters.class_id,
        "cameraMs": counters.camera_ms,
        "micMs": counters.mic_ms,
        "talkMs": counters.talk_ms,
        "lastSeenAt": counters.last_seen_at,
    }


def _presence_counters(doc: Doc) -> PresenceCounters:
    return PresenceCounters(
        session_id=SessionId(doc["sessionId"]),
        class_id=ClassId(doc["classId"]),
        user_id=UserId(doc["userId"]),
        camera_ms=doc["cameraMs"],
        mic_ms=doc["micMs"],
        talk_ms=doc["talkMs"],
        last_seen_at=doc["lastSeenAt"],
    )


# -- recordings ----------------------------------------------------------------
# One document per recording, always written whole (``replace_one``): files and the compose
# job change together, and nx-27017 neither ``$push``es subdocuments nor ``$set``s dates.


async def put_recording(collection: AsyncCollection[Doc], recording: Recording) -> None:
    """Insert or replace ``recording``'s whole document."""
    doc = recording_doc(recording)
    doc["startedAt"] = parse_iso(doc["startedAt"])
    if doc["stoppedAt"]:
        doc["stoppedAt"] = parse_iso(doc["stoppedAt"])
    oid = ObjectId(recording.id)
    try:
        await collection.replace_one({"_id": oid}, {"_id": oid, **doc}, upsert=True)
    except DuplicateKeyError:
        await collection.replace_one({"_id": oid}, {"_id": oid, **doc}, upsert=True)


def _recording(doc: Doc) -> Recording:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    for key in ("startedAt", "stoppedAt"):
        if isinstance(fields.get(key), datetime):
            fields[key] = iso_ms(fields[key])
    return recording_from_doc(str(doc["_id"]), fields)

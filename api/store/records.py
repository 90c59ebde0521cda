"""Entities to and from stored fields: the one mapping both backends share.

A *fields* mapping is an entity flattened to plain values under snake_case names: the
dataclass field names, with the class policy as ``present_ratio`` / ``late_after_seconds``
and a session summary as ``summary_present`` ... ``summary_late``. Dates are aware
``datetime`` values. Each backend only encodes fields its own way (SQLite: one column per
field, dates as ISO text; MongoDB: camelCase keys, ``_id`` as an ``ObjectId``, the policy and
the summary as subdocuments) and builds every entity here.

Readers tolerate what older data lacks: a class without policy fields reads with the
default policy, a user without ``password_hash`` / ``external_id`` reads them as ``None``.
A recording is kept as one JSON-ready document (:func:`recording_doc`) by both backends.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..ids import ClassId, RoomId, SessionId, UserId, new_id
from ..models import (
    ActivityEvent,
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    ClassRecord,
    ComposeJob,
    PresenceCounters,
    PresenceEvent,
    Recording,
    RecordingFile,
    Role,
    SessionSummary,
    User,
)
from ..timeutil import parse_iso, utcnow
from .rules import normalize_email, stored_moment

Fields = dict[str, Any]
SUMMARY_FIELDS = ("summary_present", "summary_absent", "summary_total", "summary_late")
POLICY_FIELDS = ("present_ratio", "late_after_seconds")


# -- new entities, as every backend creates them -------------------------------------------


def new_user(
    *, name: str, email: str, role: Role, password_hash: str | None, external_id: str | None
) -> User:
    """A user about to be inserted: a fresh id, the email as stored (lowercased), now."""
    return User(
        id=UserId(new_id()),
        name=name,
        email=normalize_email(email),
        role=role,
        created_at=utcnow(),
        password_hash=password_hash,
        external_id=external_id,
    )


def new_class(*, class_name: str, teacher_id: str) -> ClassRecord:
    """A class about to be inserted: a fresh id, no students yet, the default policy."""
    return ClassRecord(
        id=ClassId(new_id()),
        class_name=class_name,
        teacher_id=UserId(teacher_id),
        student_ids=(),
        created_at=utcnow(),
    )


def new_session(*, class_id: str, teacher_id: str, started_at: datetime) -> AttendanceSession:
    """A session about to start: fresh session and room ids, the start as stored."""
    return AttendanceSession(
        id=SessionId(new_id()),
        class_id=ClassId(class_id),
        room_id=RoomId(new_id()),
        teacher_id=UserId(teacher_id),
        started_at=stored_moment(started_at),
    )


def _optional_user_id(value: Any) -> UserId | None:
    return UserId(value) if value is not None else None


# -- users ------------------------------------------------------------------------------
def user_fields(user: User) -> Fields:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "created_at": user.created_at,
        "password_hash": user.password_hash,
        "external_id": user.external_id,
    }


def user_from(fields: Mapping[str, Any]) -> User:
    return User(
        id=UserId(fields["id"]),
        name=fields["name"],
        email=fields["email"],
        role=fields["role"],
        created_at=fields["created_at"],
        password_hash=fields.get("password_hash"),
        external_id=fields.get("external_id"),
    )


# -- classes ----------------------------------------------------------------------------
def class_fields(record: ClassRecord) -> Fields:
    return {
        "id": record.id,
        "class_name": record.class_name,
        "teacher_id": record.teacher_id,
        "student_ids": list(record.student_ids),
        "created_at": record.created_at,
        "present_ratio": record.policy.present_ratio,
        "late_after_seconds": record.policy.late_after_seconds,
        "allow_student_recordings": record.allow_student_recordings,
        "allow_student_screen_share": record.allow_student_screen_share,
        "allow_student_unmute": record.allow_student_unmute,
    }


def class_from(fields: Mapping[str, Any]) -> ClassRecord:
    """``student_ids`` in enrolment order; missing settings read as the defaults."""
    default = AttendancePolicy()
    ratio, late = fields.get("present_ratio"), fields.get("late_after_seconds")
    return ClassRecord(
        id=ClassId(fields["id"]),
        class_name=fields["class_name"],
        teacher_id=UserId(fields["teacher_id"]),
        student_ids=tuple(UserId(student_id) for student_id in fields["student_ids"]),
        created_at=fields["created_at"],
        policy=AttendancePolicy(
            present_ratio=default.present_ratio if ratio is None else float(ratio),
            late_after_seconds=default.late_after_seconds if late is None else int(late),
        ),
        allow_student_recordings=bool(fields.get("allow_student_recordings", False)),
        allow_student_screen_share=bool(fields.get("allow_student_screen_share", False)),
        allow_student_unmute=bool(fields.get("allow_student_unmute", True)),
    )


# -- attendance sessions ----------------------------------------------------------------
def session_fields(session: AttendanceSession) -> Fields:
    summary = session.summary
    fields: Fields = {
        "id": session.id,
        "class_id": session.class_id,
        "room_id": session.room_id,
        "teacher_id": session.teacher_id,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "summary_present": summary.present if summary else None,
        "summary_absent": summary.absent if summary else None,
        "summary_total": summary.total if summary else None,
        "summary_late": summary.late if summary else None,
    }
    if session.node_id is not None:  # a single server's sessions keep their shape
        fields["node_id"] = session.node_id
    return fields


def session_from(fields: Mapping[str, Any]) -> AttendanceSession:
    summary = None
    if fields.get("summary_total") is not None:
        summary = SessionSummary(
            present=int(fields["summary_present"]),
            absent=int(fields["summary_absent"]),
            total=int(fields["summary_total"]),
            late=int(fields.get("summary_late") or 0),
        )
    return AttendanceSession(
        id=SessionId(fields["id"]),
        class_id=ClassId(fields["class_id"]),
        room_id=RoomId(fields["room_id"]),
        teacher_id=UserId(fields["teacher_id"]),
        started_at=fields["started_at"],
        ended_at=fields.get("ended_at"),
        summary=summary,
        node_id=fields.get("node_id"),
    )


# -- marks ------------------------------------------------------------------------------
def mark_fields(mark: AttendanceMark) -> Fields:
    return {
        "session_id": mark.session_id,
        "student_id": mark.student_id,
        "class_id": mark.class_id,
        "status": mark.status,
        "source": mark.source,
        "marked_at": mark.marked_at,
        "marked_by": mark.marked_by,
        "extra": mark.extra,
    }


def mark_from(fields: Mapping[str, Any]) -> AttendanceMark:
    return AttendanceMark(
        session_id=SessionId(fields["session_id"]),
        class_id=ClassId(fields["class_id"]),
        student_id=UserId(fields["student_id"]),
        status=fields["status"],
        source=fields["source"],
        marked_at=fields["marked_at"],
        marked_by=_optional_user_id(fields.get("marked_by")),
        extra=dict(fields["extra"]),
    )


# -- presence ---------------------------------------------------------------------------
def presence_event_fields(event: PresenceEvent) -> Fields:
    return {
        "session_id": event.session_id,
        "class_id": event.class_id,
        "user_id": event.user_id,
        "kind": event.kind,
        "at": event.at,
        "reason": event.reason,
    }


def presence_event_from(fields: Mapping[str, Any]) -> PresenceEvent:
    return PresenceEvent(
        session_id=SessionId(fields["session_id"]),
        class_id=ClassId(fields["class_id"]),
        user_id=UserId(fields["user_id"]),
        kind=fields["kind"],
        at=fields["at"],
        reason=fields.get("reason"),
    )


def presence_counters_fields(counters: PresenceCounters) -> Fields:
    return {
        "session_id": counters.session_id,
        "user_id": counters.user_id,
        "class_id": counters.class_id,
        "camera_ms": counters.camera_ms,
        "mic_ms": counters.mic_ms,
        "talk_ms": counters.talk_ms,
        "last_seen_at": counters.last_seen_at,
    }


def presence_counters_from(fields: Mapping[str, Any]) -> PresenceCounters:
    return PresenceCounters(
        session_id=SessionId(fields["session_id"]),
        class_id=ClassId(fields["class_id"]),
        user_id=UserId(fields["user_id"]),
        camera_ms=int(fields["camera_ms"]),
        mic_ms=int(fields["mic_ms"]),
        talk_ms=int(fields["talk_ms"]),
        last_seen_at=fields["last_seen_at"],
    )


# -- recordings -------------------------------------------------------------------------
def activity_fields(event: ActivityEvent) -> Fields:
    return {
        "id": event.id,
        "session_id": event.session_id,
        "class_id": event.class_id,
        "user_id": event.user_id,
        "kind": event.kind,
        "at": event.at,
        "data": dict(event.data),
    }


def activity_from(fields: Mapping[str, Any]) -> ActivityEvent:
    return ActivityEvent(
        id=fields["id"],
        session_id=SessionId(fields["session_id"]),
        class_id=ClassId(fields["class_id"]),
        user_id=UserId(fields["user_id"]),
        kind=fields["kind"],
        at=fields["at"],
        data=dict(fields.get("data") or {}),
    )


def recording_doc(recording: Recording) -> dict[str, Any]:
    """A JSON-ready document (dates as ISO strings) both stores keep whole."""
    doc = recording.public()
    del doc["recordingId"]
    return doc


def recording_from_doc(recording_id: str, doc: Mapping[str, Any]) -> Recording:
    """Inverse of :func:`recording_doc`."""
    job = doc.get("job") or {}
    return Recording(
        id=recording_id,
        class_id=doc["classId"],
        session_id=doc["sessionId"],
        started_by=doc["startedBy"],
        started_at=parse_iso(doc["startedAt"]),
        status=doc["status"],
        stopped_at=parse_iso(doc["stoppedAt"]) if doc.get("stoppedAt") else None,
        stop_reason=doc.get("stopReason"),
        participants=tuple(doc.get("participants") or ()),
        files=tuple(
            RecordingFile(
                name=f["name"],
                user_id=f["userId"],
                kind=f["kind"],
                offset=float(f["offset"]),
                duration=float(f["duration"]),
                size=int(f["size"]),
                source=str(f.get("source") or ""),
            )
            for f in doc.get("files") or ()
        ),
        job=ComposeJob(
            status=job.get("status", "pending"),
            progress=float(job.get("progress", 0.0)),
            error=job.get("error"),
            file=job.get("file"),
            size=job.get("size"),
            duration=job.get("duration"),
        ),
    )

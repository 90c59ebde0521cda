"""The records the control plane keeps, independent of any store: accounts, classes,
attendance sessions and marks, presence, and recordings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, get_args

from .ids import ClassId, RoomId, SessionId, UserId, new_id
from .timeutil import iso_ms, utcnow

Role = Literal["teacher", "student"]
ROLES: tuple[str, ...] = get_args(Role)

# "late" is produced by the presence policy; teachers mark present/absent.
AttendanceStatus = Literal["present", "absent", "late"]
MarkSource = Literal["teacher", "presence", "auto"]


@dataclass(frozen=True)
class User:
    """An account: a teacher or a student, local or provisioned from Auth0."""

    id: UserId
    name: str
    email: str
    role: Role
    created_at: datetime
    password_hash: str | None = None
    external_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {"_id": self.id, "name": self.name, "email": self.email, "role": self.role}

    def summary(self) -> dict[str, Any]:
        return {"_id": self.id, "name": self.name, "email": self.email}


@dataclass(frozen=True)
class AttendancePolicy:
    """How a session's presence becomes a status when no teacher marked the student.

    Never connected: absent. First connection more than ``late_after_seconds`` after the
    start: late. Otherwise present if connected for at least ``present_ratio`` of the
    session's duration, else absent.
    """

    present_ratio: float = 0.75
    late_after_seconds: int = 600

    def public(self) -> dict[str, Any]:
        return {"presentRatio": self.present_ratio, "lateAfterSeconds": self.late_after_seconds}


@dataclass(frozen=True)
class ClassRecord:
    """A class owned by one teacher, with its enrolled students in enrolment order."""

    id: ClassId
    class_name: str
    teacher_id: UserId
    student_ids: tuple[UserId, ...]
    created_at: datetime
    policy: AttendancePolicy = field(default_factory=AttendancePolicy)
    allow_student_recordings: bool = False
    allow_student_screen_share: bool = False
    allow_student_unmute: bool = True
    """Whether a student the teacher muted may unmute themselves."""

    def public(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "className": self.class_name,
            "teacherId": self.teacher_id,
            "studentIds": list(self.student_ids),
        }

    def detail(self) -> dict[str, Any]:
        """``public()`` plus the class's settings."""
        return {
            **self.public(),
            "policy": self.policy.public(),
            "allowStudentRecordings": self.allow_student_recordings,
            "allowStudentScreenShare": self.allow_student_screen_share,
            "allowStudentUnmute": self.allow_student_unmute,
        }

    def has_member(self, user_id: str) -> bool:
        return user_id == self.teacher_id or user_id in self.student_ids


@dataclass(frozen=True)
class SessionSummary:
    """Counts broadcast with ``DONE`` and kept with the finished session."""

    present: int
    absent: int
    total: int
    late: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"present": self.present, "absent": self.absent, "total": self.total}


@dataclass(frozen=True)
class AttendanceSession:
    """One live class: its video room and its attendance, active until ended."""

    id: SessionId
    class_id: ClassId
    room_id: RoomId
    teacher_id: UserId
    started_at: datetime
    ended_at: datetime | None = None
    summary: SessionSummary | None = None
    node_id: str | None = None
    """The cluster node that holds its room (cluster mode; None on a single server)."""

    @property
    def is_active(self) -> bool:
        return self.ended_at is None

    def public(self) -> dict[str, Any]:
        return {
            "sessionId": self.id,
            "classId": self.class_id,
            "roomId": self.room_id,
            "startedAt": iso_ms(self.started_at),
            "endedAt": iso_ms(self.ended_at) if self.ended_at else None,
            "summary": self.summary.as_dict() if self.summary else None,
        }


@dataclass(frozen=True)
class AttendanceMark:
    """One student's status in one session; the latest write wins."""

    session_id: SessionId
    class_id: ClassId
    student_id: UserId
    status: AttendanceStatus
    source: MarkSource
    marked_at: datetime
    marked_by: UserId | None = None
    extra: dict[str, Any] = field(default_factory=dict)


PresenceKind = Literal["connected", "disconnected"]


@dataclass(frozen=True)
class PresenceEvent:
    """A participant's media came up or went away (append-only; never rewritten)."""

    session_id: SessionId
    class_id: ClassId
    user_id: UserId
    kind: PresenceKind
    at: datetime
    reason: str | None = None


@dataclass(frozen=True)
class PresenceCounters:
    """A participant's running totals in a session, rewritten about once a second.

    ``last_seen_at`` doubles as the heartbeat: after a crash, a presence interval left
    open is closed there.
    """

    session_id: SessionId
    class_id: ClassId
    user_id: UserId
    camera_ms: int
    mic_ms: int
    talk_ms: int
    last_seen_at: datetime


ActivityKind = Literal[
    "chat",
    "chat_deleted",
    "hand",
    "poll_started",
    "poll_vote",
    "poll_ended",
    "moderation",
    "camera",
    "talking",
]
MEDIA_MARK_KINDS: tuple[ActivityKind, ...] = ("camera", "talking")
"""Marks the presence tracker writes when a member's camera or talking turns on or off
(``data``: ``{"on": bool}``), for a timeline; the seconds themselves are the counters."""
ACTIVITY_KINDS: tuple[str, ...] = get_args(ActivityKind)


@dataclass(frozen=True)
class ActivityEvent:
    """Something a member did in the room (a chat message, its deletion, a hand raised or
    lowered, a camera or talking mark): append-only, the participation record.

    ``user_id`` is who did it; ``data`` is the event's own JSON object (a message's
    ``messageId`` and ``text``, a hand's ``raised`` and ``by``, a mark's ``on``)."""

    id: str
    session_id: SessionId
    class_id: ClassId
    user_id: UserId
    kind: ActivityKind
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)


def new_activity(
    session: AttendanceSession,
    user_id: UserId,
    kind: ActivityKind,
    data: dict[str, Any],
    at: datetime | None = None,
) -> ActivityEvent:
    """A fresh activity event of `session` (now, unless `at`)."""
    return ActivityEvent(
        id=new_id(),
        session_id=session.id,
        class_id=session.class_id,
        user_id=user_id,
        kind=kind,
        at=at if at is not None else utcnow(),
        data=data,
    )


RecordingStatus = Literal["recording", "stopped"]
JobStatus = Literal["pending", "running", "done", "failed"]


@dataclass(frozen=True)
class RecordingFile:
    """One segment file: a participant's audio or video from `offset` seconds on.

    `source` is what the track carried: ``microphone`` (audio), ``camera`` or ``screen``
    (video); left empty it is the kind's default, as for recordings made before screen
    shares were recorded."""

    name: str
    user_id: str
    kind: str
    offset: float
    duration: float
    size: int
    source: str = ""

    def __post_init__(self) -> None:
        if not self.source:
            object.__setattr__(self, "source", "microphone" if self.kind == "audio" else "camera")

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "userId": self.user_id,
            "kind": self.kind,
            "offset": round(self.offset, 3),
            "duration": round(self.duration, 3),
            "size": self.size,
            "source": self.source,
        }


@dataclass(frozen=True)
class ComposeJob:
    """The offline grid composition; `file` is set once it is done."""

    status: JobStatus = "pending"
    progress: float = 0.0
    error: str | None = None
    file: str | None = None
    size: int | None = None
    duration: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "progress": round(self.progress, 4),
            "error": self.error,
            "file": self.file,
            "size": self.size,
            "duration": self.duration,
        }


@dataclass(frozen=True)
class Recording:
    """A recording of one class session, from start to stop (or the size limit)."""

    id: str
    class_id: str
    session_id: str
    started_by: str
    started_at: datetime
    status: RecordingStatus = "recording"
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    participants: tuple[str, ...] = ()
    files: tuple[RecordingFile, ...] = ()
    job: ComposeJob = field(default_factory=ComposeJob)

    def with_job(self, **changes: Any) -> Recording:
        return replace(self, job=replace(self.job, **changes))

    def public(self) -> dict[str, Any]:
        return {
            "recordingId": self.id,
            "classId": self.class_id,
            "sessionId": self.session_id,
            "startedBy": self.started_by,
            "startedAt": iso_ms(self.started_at),
            "stoppedAt": iso_ms(self.stopped_at) if self.stopped_at else None,
            "status": self.status,
            "stopReason": self.stop_reason,
            "participants": list(self.participants),
            "files": [f.public() for f in self.files],
            "job": self.job.public(),
        }

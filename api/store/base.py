"""The storage interface every backend implements.

Backends raise :class:`api.errors.Conflict` for unique-rule violations and
return ``None`` for unknown or malformed ids; they never raise for "not found".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from datetime import datetime

from ..models import (
    ActivityEvent,
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    ClassRecord,
    PresenceCounters,
    PresenceEvent,
    Recording,
    Role,
    SessionSummary,
    User,
)


class Store(ABC):
    """Accounts, classes, attendance sessions and marks, presence, room activity and
    recordings, durably."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and create indexes; safe to call on an existing database."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    # -- users --------------------------------------------------------------
    @abstractmethod
    async def create_user(
        self,
        *,
        name: str,
        email: str,
        role: Role,
        password_hash: str | None = None,
        external_id: str | None = None,
    ) -> User:
        """Insert a user; emails are unique case-insensitively (``Conflict``)."""

    @abstractmethod
    async def get_user(self, user_id: str) -> User | None: ...

    @abstractmethod
    async def get_user_by_email(self, email: str) -> User | None: ...

    @abstractmethod
    async def get_user_by_external_id(self, external_id: str) -> User | None: ...

    @abstractmethod
    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        """Replace a user's password hash (a re-hash at a new cost); False if no such user."""

    @abstractmethod
    async def list_users(self, role: Role) -> list[User]:
        """Users of one role, oldest first."""

    # -- classes ------------------------------------------------------------
    @abstractmethod
    async def create_class(self, *, class_name: str, teacher_id: str) -> ClassRecord: ...

    @abstractmethod
    async def get_class(self, class_id: str) -> ClassRecord | None: ...

    @abstractmethod
    async def add_student(self, class_id: str, student_id: str) -> ClassRecord:
        """Enrol a student; enrolling twice keeps one entry. Unknown class → ``None`` is
        not possible here: callers check the class first."""

    @abstractmethod
    async def list_classes_for_teacher(self, teacher_id: str) -> list[ClassRecord]: ...

    @abstractmethod
    async def list_classes_for_student(self, student_id: str) -> list[ClassRecord]: ...

    # -- attendance sessions ------------------------------------------------
    @abstractmethod
    async def start_session(
        self, *, class_id: str, teacher_id: str, started_at: datetime
    ) -> AttendanceSession:
        """Create the class's active session; ``Conflict`` if one is active already."""

    @abstractmethod
    async def place_session(self, session_id: str, node_id: str) -> None:
        """Record that `node_id` holds the active session's room (cluster placement);
        ``NotFound`` if there is no such session, ``Conflict`` if it has ended."""

    @abstractmethod
    async def get_session(self, session_id: str) -> AttendanceSession | None: ...

    @abstractmethod
    async def get_active_session(self, class_id: str) -> AttendanceSession | None: ...

    @abstractmethod
    async def list_active_sessions(self) -> list[AttendanceSession]: ...

    @abstractmethod
    async def list_sessions(self, class_id: str) -> list[AttendanceSession]:
        """Every session of a class, newest first."""

    @abstractmethod
    async def latest_ended_session(self, class_id: str) -> AttendanceSession | None: ...

    @abstractmethod
    async def end_session(
        self, session_id: str, *, ended_at: datetime, summary: SessionSummary
    ) -> AttendanceSession:
        """Close an active session; ``Conflict`` if it has ended already."""

    # -- marks --------------------------------------------------------------
    @abstractmethod
    async def put_mark(self, mark: AttendanceMark) -> None:
        """Insert or replace the (session, student) mark."""

    @abstractmethod
    async def get_mark(self, session_id: str, student_id: str) -> AttendanceMark | None: ...

    @abstractmethod
    async def list_marks(self, session_id: str) -> list[AttendanceMark]: ...

    @abstractmethod
    async def list_marks_for_student(self, class_id: str, student_id: str) -> list[AttendanceMark]:
        """One student's marks across the class's sessions, newest session first."""

    # -- class settings -----------------------------------------------------
    @abstractmethod
    async def update_class_settings(
        self,
        class_id: str,
        *,
        policy: AttendancePolicy | None = None,
        allow_student_recordings: bool | None = None,
        allow_student_screen_share: bool | None = None,
        allow_student_unmute: bool | None = None,
    ) -> ClassRecord:
        """Change what is given (``None`` keeps the current value); ``NotFound`` if the
        class does not exist."""

    # -- presence -----------------------------------------------------------
    @abstractmethod
    async def append_presence_event(self, event: PresenceEvent) -> None:
        """Insert-only: presence events are never updated or deleted."""

    @abstractmethod
    async def list_presence_events(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceEvent]:
        """A session's events (only `user_id`'s, if given) in the order they were appended."""

    @abstractmethod
    async def put_presence_counters(self, counters: PresenceCounters) -> None:
        """Insert or replace the (session, user) counters."""

    @abstractmethod
    async def list_presence_counters(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceCounters]:
        """A session's counters, by user id (only `user_id`'s, if given)."""

    # -- room activity --------------------------------------------------------
    @abstractmethod
    async def append_activity(self, event: ActivityEvent) -> None:
        """Insert-only, like presence events: the record keeps what was said and done."""

    @abstractmethod
    async def list_activity(
        self, session_id: str, kinds: Collection[str] | None = None
    ) -> list[ActivityEvent]:
        """A session's activity (only of `kinds`, if given) in the order it was appended."""

    # -- recordings ---------------------------------------------------------
    @abstractmethod
    async def put_recording(self, recording: Recording) -> None:
        """Insert or replace the whole recording document."""

    @abstractmethod
    async def get_recording(self, recording_id: str) -> Recording | None: ...

    @abstractmethod
    async def list_recordings(self, class_id: str) -> list[Recording]:
        """A class's recordings, newest first."""

    @abstractmethod
    async def list_unfinished_recordings(self) -> list[Recording]:
        """Recordings still ``recording`` or with a ``pending``/``running`` compose job
        (what a crash left behind), oldest first."""

    @abstractmethod
    async def delete_recording(self, recording_id: str) -> bool:
        """Remove the recording's metadata; ``False`` if there was none."""

"""A session's attendance per student, from its presence log and the teacher's marks.

Pure logic: the caller loads events, counters and marks; nothing here does I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..ids import UserId
from ..models import (
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    AttendanceStatus,
    MarkSource,
    PresenceCounters,
    PresenceEvent,
)
from ..timeutil import iso_ms
from .intervals import Interval, clip, presence_intervals, total_seconds
from .policy import derived_status


@dataclass(frozen=True)
class StudentAttendance:
    """One student's attendance in one session, provisional while the session runs."""

    student_id: UserId
    status: AttendanceStatus | None
    source: MarkSource | None
    intervals: list[Interval] = field(default_factory=list)
    camera_seconds: float = 0.0
    mic_seconds: float = 0.0
    talk_seconds: float = 0.0
    marked_by: UserId | None = None
    marked_at: datetime | None = None

    @property
    def first_join(self) -> datetime | None:
        return self.intervals[0].start if self.intervals else None

    @property
    def last_leave(self) -> datetime | None:
        return self.intervals[-1].end if self.intervals else None

    @property
    def presence_seconds(self) -> float:
        return total_seconds(self.intervals)

    def detail(self) -> dict[str, Any]:
        """The wire and storage form (``AttendanceMark.extra`` of a finished session)."""
        return {
            "firstJoin": iso_ms(self.first_join) if self.first_join else None,
            "lastLeave": iso_ms(self.last_leave) if self.last_leave else None,
            "presenceSeconds": round(self.presence_seconds, 3),
            "cameraSeconds": round(self.camera_seconds, 3),
            "micSeconds": round(self.mic_seconds, 3),
            "talkSeconds": round(self.talk_seconds, 3),
            "intervals": [[iso_ms(i.start), iso_ms(i.end)] for i in self.intervals],
            "override": (
                {"by": self.marked_by, "at": iso_ms(self.marked_at)}
                if self.source == "teacher" and self.marked_at
                else None
            ),
        }


def session_report(
    session: AttendanceSession,
    policy: AttendancePolicy,
    student_ids: Sequence[UserId],
    events: Iterable[PresenceEvent],
    counters: Iterable[PresenceCounters],
    marks: Iterable[AttendanceMark],
    *,
    until: datetime,
    grace: timedelta,
    final: bool,
) -> list[StudentAttendance]:
    """Every enrolled student's attendance up to ``until``.

    A teacher's mark wins. Otherwise, when ``final``, the policy decides from presence;
    while the session runs, a student who has been in the room is provisionally
    ``present`` and one who has not has no status yet.
    """
    by_user: dict[UserId, list[PresenceEvent]] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    totals = {c.user_id: c for c in counters}
    overrides = {m.student_id: m for m in marks if m.source == "teacher"}
    rows = []
    for student_id in student_ids:
        intervals = clip(
            presence_intervals(by_user.get(student_id, []), grace=grace, open_until=until),
            session.started_at,
            until,
        )
        counted = totals.get(student_id)
        mark = overrides.get(student_id)
        status: AttendanceStatus | None
        source: MarkSource | None
        if mark is not None:
            status, source = mark.status, "teacher"
        elif final:
            status = derived_status(policy, intervals, session.started_at, until)
            source = "presence"
        else:
            status, source = ("present", "presence") if intervals else (None, None)
        rows.append(
            StudentAttendance(
                student_id=student_id,
                status=status,
                source=source,
                intervals=intervals,
                camera_seconds=counted.camera_ms / 1000 if counted else 0.0,
                mic_seconds=counted.mic_ms / 1000 if counted else 0.0,
                talk_seconds=counted.talk_ms / 1000 if counted else 0.0,
                marked_by=mark.marked_by if mark else None,
                marked_at=mark.marked_at if mark else None,
            )
        )
    return rows

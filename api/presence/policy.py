"""The status a session's presence earns under a class's policy: pure logic."""

from __future__ import annotations

from datetime import datetime

from ..models import AttendancePolicy, AttendanceStatus
from .intervals import Interval, total_seconds


def derived_status(
    policy: AttendancePolicy,
    intervals: list[Interval],
    session_start: datetime,
    session_end: datetime,
) -> AttendanceStatus:
    """``absent`` if never connected; ``late`` if the first connection came more than
    ``late_after_seconds`` after the start; else ``present`` when connected for at least
    ``present_ratio`` of the session, otherwise ``absent``."""
    if not intervals:
        return "absent"
    first_join = intervals[0].start
    if (first_join - session_start).total_seconds() > policy.late_after_seconds:
        return "late"
    duration = (session_end - session_start).total_seconds()
    if duration <= 0:
        return "present"
    return "present" if total_seconds(intervals) / duration >= policy.present_ratio else "absent"

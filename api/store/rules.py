"""Rules both backends apply identically, so the contract tests can hold them to one behaviour."""

from __future__ import annotations

from datetime import UTC, datetime

# Messages for records a write refers to but that do not exist. Class and student have
# contract strings in ``api.errors``; these two only surface if a caller skipped its checks.
TEACHER_NOT_FOUND = "Teacher not found"
SESSION_NOT_FOUND = "Attendance session not found"


def normalize_email(email: str) -> str:
    """The stored and looked-up form of an email: unique rules compare this."""
    return email.lower()


def stored_moment(moment: datetime) -> datetime:
    """``moment`` as every backend keeps it: UTC, truncated to milliseconds (BSON's
    resolution). Naive datetimes are refused: the backends would read them differently."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: stores keep aware UTC times")
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)

"""Permission checks, one small named function per rule (each raises ``Forbidden``)."""

from __future__ import annotations

from .errors import (
    NOT_CLASS_TEACHER,
    NOT_ENROLLED,
    STUDENT_ONLY,
    TEACHER_ONLY,
    WS_STUDENT_EVENT_ONLY,
    WS_TEACHER_EVENT_ONLY,
    Forbidden,
)
from .models import ClassRecord, User


def require_teacher(user: User) -> None:
    if user.role != "teacher":
        raise Forbidden(TEACHER_ONLY)


def require_student(user: User) -> None:
    if user.role != "student":
        raise Forbidden(STUDENT_ONLY)


def require_teacher_event(user: User) -> None:
    if user.role != "teacher":
        raise Forbidden(WS_TEACHER_EVENT_ONLY)


def require_student_event(user: User) -> None:
    if user.role != "student":
        raise Forbidden(WS_STUDENT_EVENT_ONLY)


def require_owner(user: User, cls: ClassRecord) -> None:
    """The teacher who created the class."""
    if cls.teacher_id != user.id:
        raise Forbidden(NOT_CLASS_TEACHER)


def require_member(user: User, cls: ClassRecord) -> None:
    """Its teacher or one of its enrolled students."""
    if not cls.has_member(user.id):
        raise Forbidden(NOT_CLASS_TEACHER)


def require_enrolled(user: User, cls: ClassRecord) -> None:
    if user.id not in cls.student_ids:
        raise Forbidden(NOT_ENROLLED)

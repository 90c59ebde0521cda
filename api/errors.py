"""The one error hierarchy of the control plane.

Every error carries the exact message clients see. It is mapped once to the HTTP
envelope (``api.middleware``) and once to the WebSocket ``ERROR`` event
(``api.ws.events``); media-plane errors become one of these in ``api.media_errors``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error a client may see; ``status`` is the HTTP status code."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ApiError):
    """The request is malformed or fails validation."""

    status = 400


class Unauthorized(ApiError):
    """No credentials, or credentials that do not verify."""

    status = 401


class Forbidden(ApiError):
    """Authenticated, but the role or class membership does not allow this."""

    status = 403


class NotFound(ApiError):
    """The thing asked for does not exist."""

    status = 404


class Conflict(ApiError):
    """The request collides with the current state (e.g. a session already active)."""

    status = 409


class InsufficientStorage(ApiError):
    """The server has no room left to store what was asked for (e.g. a recording)."""

    status = 507


class RequestTimeout(ApiError):
    """The client did not send the whole request in time."""

    status = 408


class PayloadTooLarge(ApiError):
    """The body or frame exceeds the configured limit."""

    status = 413


class TooManyRequests(ApiError):
    """The client sends faster than it may (a rate or a count limit)."""

    status = 429


class ServiceUnavailable(ApiError):
    """The server cannot take this now (it is saturated); the client may retry later."""

    status = 503


DRAINING = "Draining: this node takes no new rooms and stops soon"


class InternalError(ApiError):
    """The server failed; the message says nothing more (the log has the detail)."""

    status = 500


def error_event(message: str, event: str | None = None) -> dict[str, Any]:
    """The ``data`` of a WebSocket ``ERROR``: the message, and the client event it answers
    (``None`` when it answers none, e.g. a frame that could not be decoded)."""
    return {"message": message, "event": event}


# The exact strings of the REST/WS contract; clients depend on them.
INVALID_SCHEMA = "Invalid request schema"
UNAUTHORIZED = "Unauthorized, token missing or invalid"
WS_UNAUTHORIZED = "Unauthorized or invalid token"
TEACHER_ONLY = "Forbidden, teacher access required"
STUDENT_ONLY = "Forbidden, student access required"
NOT_CLASS_TEACHER = "Forbidden, not class teacher"
NOT_ENROLLED = "Forbidden, not enrolled in class"
CLASS_NOT_FOUND = "Class not found"
STUDENT_NOT_FOUND = "Student not found"
EMAIL_EXISTS = "Email already exists"
BAD_LOGIN = "Invalid email or password"
SESSION_ALREADY_ACTIVE = "Attendance session already active for this class"
NO_ACTIVE_SESSION = "No active attendance session"
WS_TEACHER_EVENT_ONLY = "Forbidden, teacher event only"
WS_STUDENT_EVENT_ONLY = "Forbidden, student event only"
WS_UNKNOWN_EVENT = "Unknown event"
WS_INVALID_FORMAT = "Invalid message format"
WS_UPGRADE_REQUIRED = "WebSocket upgrade required"
INTERNAL_ERROR = "Internal server error"
METRICS_UNAUTHORIZED = "Unauthorized, metrics token missing or invalid"
METRICS_LOOPBACK_ONLY = "Forbidden, metrics are served to loopback clients only"

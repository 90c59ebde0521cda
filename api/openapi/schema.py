"""The building blocks every part of the OpenAPI document uses: schemas shared by several
resources, the success and failure envelopes, and one operation."""

from __future__ import annotations

from typing import Any

from .. import errors, validation
from ..rate_limits import TOO_MANY_REQUESTS

ID = {"type": "string", "pattern": "^[0-9a-f]{24}$"}


def text_field(max_length: int = validation.MAX_TEXT) -> dict[str, Any]:
    """A string request field that must not be blank, of at most `max_length` characters
    (`validation.text`: surrounding spaces are removed, and what is left must not be
    empty)."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": validation.NOT_BLANK_PATTERN,
    }


EMAIL = {
    "type": "string",
    "maxLength": validation.MAX_EMAIL,
    "pattern": validation.EMAIL_PATTERN,
    "description": "local@domain.tld: no spaces, @ or control characters in its parts; "
    "surrounding spaces and case are not kept",
}
"""An email request field exactly as `validation.email` reads it (not JSON Schema's
``format: email``, which refuses the internationalized addresses the server takes)."""


def password_field(min_length: int = validation.MIN_PASSWORD) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": validation.MAX_PASSWORD}


TIME = {"type": "string", "format": "date-time", "example": "2026-11-26T23:01:04.123Z"}
USER = {
    "type": "object",
    "required": ["_id", "name", "email", "role"],
    "properties": {
        "_id": ID,
        "name": {"type": "string"},
        "email": {"type": "string"},
        "role": {"enum": ["teacher", "student"]},
    },
}
STUDENT = {
    "type": "object",
    "required": ["_id", "name", "email"],
    "properties": {"_id": ID, "name": {"type": "string"}, "email": {"type": "string"}},
}
CLASS: dict[str, Any] = {
    "type": "object",
    "required": ["_id", "className", "teacherId", "studentIds"],
    "properties": {
        "_id": ID,
        "className": {"type": "string"},
        "teacherId": ID,
        "studentIds": {"type": "array", "items": ID},
    },
}
SUMMARY = {
    "type": "object",
    "required": ["message", "present", "absent", "total"],
    "properties": {
        "message": {"const": "Attendance persisted"},
        "present": {"type": "integer"},
        "absent": {"type": "integer"},
        "total": {"type": "integer"},
    },
}


def body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body of one object."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def success(status: str, data: dict[str, Any], description: str) -> dict[str, Any]:
    """The ``{"success": true, "data": ...}`` response under ``status``."""
    envelope = {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data},
    }
    return {
        status: {"description": description, "content": {"application/json": {"schema": envelope}}}
    }


def failures(*pairs: tuple[int, str]) -> dict[str, Any]:
    """The ``{"success": false, "error": ...}`` responses, one per status, listing every
    exact error message it can carry."""
    responses: dict[str, Any] = {}
    for status, message in pairs:
        entry = responses.setdefault(
            str(status),
            {
                "description": "",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}
                },
            },
        )
        entry["description"] = " | ".join(filter(None, [entry["description"], message]))
    return responses


AUTH = (401, errors.UNAUTHORIZED)
HEAVY = (429, TOO_MANY_REQUESTS)
"""A route rate-limited per account (`HEAVY_ROUTES_*`); ``Retry-After`` says when to retry."""
SCHEMA = (400, errors.INVALID_SCHEMA)
TEACHER = (403, errors.TEACHER_ONLY)
OWNER = (403, errors.NOT_CLASS_TEACHER)
NO_CLASS = (404, errors.CLASS_NOT_FOUND)
NO_SESSION = (404, "Session not found")
CLASS_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
SESSION_PARAMS = [
    *CLASS_ID,
    {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}},
]
SECURED: list[dict[str, list[str]]] = [{"bearer": []}]


def op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    """One operation: its summary, responses and, if given, request body and parameters;
    bearer-secured unless ``secured`` is false."""
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = params
    if secured:
        operation["security"] = SECURED
    return operation

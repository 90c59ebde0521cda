"""``/class``, ``/classes``, ``/students``: classes, enrolment, rooms and settings."""

from __future__ import annotations

from typing import Any

from .. import errors, validation
from .schema import (
    AUTH,
    CLASS,
    CLASS_ID,
    ID,
    NO_CLASS,
    OWNER,
    SCHEMA,
    STUDENT,
    TEACHER,
    body,
    failures,
    op,
    success,
    text_field,
)

# ClassRecord.detail(): the class with its settings, as GET /class/{id} and the settings
# update answer it.
_CLASS_DETAIL: dict[str, Any] = {
    **CLASS,
    "required": [
        *CLASS["required"],
        "policy",
        "allowStudentRecordings",
        "allowStudentScreenShare",
        "allowStudentUnmute",
    ],
    "properties": {
        **CLASS["properties"],
        "policy": {
            "type": "object",
            "required": ["presentRatio", "lateAfterSeconds"],
            "properties": {
                "presentRatio": {"type": "number"},
                "lateAfterSeconds": {"type": "integer"},
            },
        },
        "allowStudentRecordings": {"type": "boolean"},
        "allowStudentScreenShare": {"type": "boolean"},
        "allowStudentUnmute": {"type": "boolean"},
    },
}

_ROOM = {
    "type": "object",
    "properties": {
        "classId": ID,
        "activeRoomId": {"type": ["string", "null"]},
        "isActive": {"type": "boolean"},
        "startedAt": {"type": ["string", "null"]},
        "sessionId": {"type": ["string", "null"]},
    },
}


def class_paths() -> dict[str, Any]:
    return {
        "/class": {
            "post": op(
                "Create a class (teacher)",
                {**success("201", CLASS, "The class"), **failures(SCHEMA, AUTH, TEACHER)},
                body=body(["className"], {"className": text_field()}),
            )
        },
        "/class/{id}/add-student": {
            "post": op(
                "Enrol a student (owning teacher)",
                {
                    **success("200", CLASS, "The class"),
                    **failures(
                        SCHEMA, AUTH, TEACHER, OWNER, NO_CLASS, (404, errors.STUDENT_NOT_FOUND)
                    ),
                },
                body=body(["studentId"], {"studentId": text_field(validation.MAX_ID)}),
                params=CLASS_ID,
            )
        },
        "/class/{id}": {
            "get": op(
                "A class with its students (owner or enrolled)",
                {
                    **success(
                        "200",
                        {
                            **_CLASS_DETAIL,
                            "required": [*_CLASS_DETAIL["required"], "students"],
                            "properties": {
                                **_CLASS_DETAIL["properties"],
                                "students": {"type": "array", "items": STUDENT},
                            },
                        },
                        "The class",
                    ),
                    **failures(AUTH, OWNER, NO_CLASS),
                },
                params=CLASS_ID,
            )
        },
        "/class/{id}/room": {
            "get": op(
                "The class's active video room",
                {**success("200", _ROOM, "Room status"), **failures(AUTH, OWNER, NO_CLASS)},
                params=CLASS_ID,
            )
        },
        "/classes": {
            "get": op(
                "My classes (owned or enrolled)",
                {
                    **success("200", {"type": "array", "items": CLASS}, "Classes"),
                    **failures(AUTH),
                },
            )
        },
        "/students": {
            "get": op(
                "Every student (teacher)",
                {
                    **success("200", {"type": "array", "items": STUDENT}, "Students"),
                    **failures(AUTH, TEACHER),
                },
            )
        },
        "/class/{id}/settings": {
            "put": op(
                "Change the attendance policy, recording access and screen sharing "
                "(owning teacher)",
                {
                    **success("200", _CLASS_DETAIL, "The class with its settings"),
                    **failures(SCHEMA, AUTH, TEACHER, OWNER, NO_CLASS),
                },
                body=body(
                    [],
                    {
                        "presentRatio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "lateAfterSeconds": {"type": "integer", "minimum": 0, "maximum": 86400},
                        "allowStudentRecordings": {"type": "boolean"},
                        "allowStudentScreenShare": {"type": "boolean"},
                        "allowStudentUnmute": {"type": "boolean"},
                    },
                ),
                params=CLASS_ID,
            )
        },
    }

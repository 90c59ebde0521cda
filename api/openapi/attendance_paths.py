"""``/attendance/*`` and the reports: starting and ending sessions, past sessions, a
student's own status and history."""

from __future__ import annotations

from typing import Any

from .. import errors, validation
from ..store.outage import STORE_FULL, STORE_UNAVAILABLE
from .schema import (
    AUTH,
    CLASS_ID,
    HEAVY,
    ID,
    NO_CLASS,
    NO_SESSION,
    OWNER,
    SCHEMA,
    SESSION_PARAMS,
    SUMMARY,
    TEACHER,
    TIME,
    body,
    failures,
    op,
    success,
    text_field,
)

_CLASS_ID_BODY = body(["classId"], {"classId": text_field(validation.MAX_ID)})
_STARTED = {
    "type": "object",
    "properties": {"classId": ID, "roomId": ID, "sessionId": ID, "startedAt": TIME},
}
_SESSION_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sessionId": ID,
        "roomId": ID,
        "startedAt": TIME,
        "endedAt": {"type": ["string", "null"]},
        "isActive": {"type": "boolean"},
        "summary": {"type": ["object", "null"]},
    },
}
_STUDENT_ROW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "studentId": ID,
        "status": {"enum": ["present", "absent", "late", None]},
        "source": {"enum": ["teacher", "presence", None]},
        "firstJoin": {"type": ["string", "null"]},
        "lastLeave": {"type": ["string", "null"]},
        "presenceSeconds": {"type": "number"},
        "cameraSeconds": {"type": "number"},
        "micSeconds": {"type": "number"},
        "talkSeconds": {"type": "number"},
        "intervals": {"type": "array", "items": {"type": "array", "items": TIME}},
        "override": {"type": ["object", "null"]},
    },
}
_ACTIVITY = {
    "presenceRatio": {"type": "number"},
    "chatMessages": {"type": "integer"},
    "handsRaised": {"type": "integer"},
    "pollVotes": {"type": "integer"},
    "activityScore": {"type": "number"},
}
_MY_ROW: dict[str, Any] = {
    "type": "object",
    "properties": {**_STUDENT_ROW["properties"], **_ACTIVITY},
}
_SPAN = {
    "type": "array",
    "description": "[start, end]; end is null while the span is open",
    "items": {"anyOf": [TIME, {"type": "null"}]},
    "minItems": 2,
    "maxItems": 2,
}
_PARTICIPATION_ROW = {
    "type": "object",
    "properties": {
        **_MY_ROW["properties"],
        "chatDeleted": {"type": "integer"},
        "moderation": {"type": "array", "items": {"type": "object"}},
        "chatAt": {"type": "array", "items": TIME},
        "handsAt": {"type": "array", "items": TIME},
        "cameraSpans": {"type": "array", "items": _SPAN},
        "talkSpans": {"type": "array", "items": _SPAN},
    },
}


def attendance_paths() -> dict[str, Any]:
    return {
        "/class/{id}/my-attendance": {
            "get": op(
                "My status in the latest finished session",
                {
                    **success(
                        "200",
                        {
                            "type": "object",
                            "properties": {
                                "classId": ID,
                                "status": {"enum": ["present", "absent", "late", None]},
                            },
                        },
                        "Status or null",
                    ),
                    **failures(
                        AUTH, (403, errors.STUDENT_ONLY), (403, errors.NOT_ENROLLED), NO_CLASS
                    ),
                },
                params=CLASS_ID,
            )
        },
        "/attendance/start": {
            "post": op(
                "Start the session and its video room",
                {
                    **success("200", _STARTED, "The new session"),
                    **failures(
                        SCHEMA,
                        AUTH,
                        TEACHER,
                        OWNER,
                        NO_CLASS,
                        (409, errors.SESSION_ALREADY_ACTIVE),
                    ),
                },
                body=_CLASS_ID_BODY,
            )
        },
        "/attendance/end": {
            "post": op(
                "End the session and persist attendance (as WS DONE)",
                {
                    **success("200", SUMMARY, "Counts over enrolled students"),
                    **failures(
                        SCHEMA,
                        AUTH,
                        TEACHER,
                        OWNER,
                        NO_CLASS,
                        (409, errors.NO_ACTIVE_SESSION),
                        # The session stays active (presence stays buffered): end it again.
                        (503, STORE_UNAVAILABLE),
                        (507, STORE_FULL),
                    ),
                },
                body=_CLASS_ID_BODY,
            )
        },
        "/class/{id}/sessions": {
            "get": op(
                "Every session of the class, newest first (owning teacher)",
                {
                    **success("200", {"type": "array", "items": _SESSION_ITEM}, "Sessions"),
                    **failures(AUTH, TEACHER, OWNER, NO_CLASS),
                },
                params=CLASS_ID,
            )
        },
        "/class/{id}/sessions/{session_id}": {
            "get": op(
                "One session with every student's status, source and presence detail",
                {
                    **success(
                        "200",
                        {
                            **_SESSION_ITEM,
                            "properties": {
                                **_SESSION_ITEM["properties"],
                                "students": {"type": "array", "items": _STUDENT_ROW},
                            },
                        },
                        "Detail",
                    ),
                    **failures(AUTH, TEACHER, OWNER, NO_CLASS, NO_SESSION),
                },
                params=SESSION_PARAMS,
            )
        },
        "/class/{id}/sessions/{session_id}/attendance.csv": {
            "get": op(
                "The same detail as CSV",
                {
                    "200": {"description": "CSV", "content": {"text/csv": {}}},
                    **failures(AUTH, TEACHER, OWNER, NO_CLASS, NO_SESSION, HEAVY),
                },
                params=SESSION_PARAMS,
            )
        },
        "/class/{id}/sessions/{session_id}/participation": {
            "get": op(
                "Every student's attendance with its evidence, what they did in the room"
                " (chat, hands, polls, moderation) and an activity score",
                {
                    **success(
                        "200",
                        {
                            **_SESSION_ITEM,
                            "properties": {
                                **_SESSION_ITEM["properties"],
                                "classId": ID,
                                "policy": {"type": "object"},
                                "scoreFormula": {"type": "string"},
                                "polls": {"type": "array", "items": {"type": "object"}},
                                "students": {"type": "array", "items": _PARTICIPATION_ROW},
                            },
                        },
                        "Participation",
                    ),
                    **failures(AUTH, TEACHER, OWNER, NO_CLASS, NO_SESSION),
                },
                params=SESSION_PARAMS,
            )
        },
        "/class/{id}/sessions/{session_id}/participation.csv": {
            "get": op(
                "The same participation as CSV",
                {
                    "200": {"description": "CSV", "content": {"text/csv": {}}},
                    **failures(AUTH, TEACHER, OWNER, NO_CLASS, NO_SESSION, HEAVY),
                },
                params=SESSION_PARAMS,
            )
        },
        "/class/{id}/my-history": {
            "get": op(
                "My status, presence and participation in every finished session"
                " (enrolled student)",
                {
                    **success("200", {"type": "array", "items": _MY_ROW}, "History"),
                    **failures(
                        AUTH, (403, errors.STUDENT_ONLY), (403, errors.NOT_ENROLLED), NO_CLASS
                    ),
                },
                params=CLASS_ID,
            )
        },
    }

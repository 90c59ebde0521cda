"""The OpenAPI 3.1 description of the REST surface, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from . import errors

_ID = {"type": "string", "pattern": "^[0-9a-f]{24}$"}
_TIME = {"type": "string", "format": "date-time", "example": "2026-11-26T23:01:04.123Z"}
_USER = {
    "type": "object",
    "required": ["_id", "name", "email", "role"],
    "properties": {
        "_id": _ID,
        "name": {"type": "string"},
        "email": {"type": "string"},
        "role": {"enum": ["teacher", "student"]},
    },
}
_STUDENT = {
    "type": "object",
    "required": ["_id", "name", "email"],
    "properties": {"_id": _ID, "name": {"type": "string"}, "email": {"type": "string"}},
}
_CLASS: dict[str, Any] = {
    "type": "object",
    "required": ["_id", "className", "teacherId", "studentIds"],
    "properties": {
        "_id": _ID,
        "className": {"type": "string"},
        "teacherId": _ID,
        "studentIds": {"type": "array", "items": _ID},
    },
}
_SUMMARY = {
    "type": "object",
    "required": ["message", "present", "absent", "total"],
    "properties": {
        "message": {"const": "Attendance persisted"},
        "present": {"type": "integer"},
        "absent": {"type": "integer"},
        "total": {"type": "integer"},
    },
}


def _body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _success(status: str, data: dict[str, Any], description: str) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data},
    }
    return {
        status: {"description": description, "content": {"application/json": {"schema": envelope}}}
    }


def _failures(*pairs: tuple[int, str]) -> dict[str, Any]:
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


_AUTH = (401, errors.UNAUTHORIZED)
_SCHEMA = (400, errors.INVALID_SCHEMA)
_TEACHER = (403, errors.TEACHER_ONLY)
_OWNER = (403, errors.NOT_CLASS_TEACHER)
_NO_CLASS = (404, errors.CLASS_NOT_FOUND)
_NO_SESSION = (404, "Session not found")
_CLASS_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_SESSION_PARAMS = [
    *_CLASS_ID,
    {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}},
]
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_ICE_SERVER = {
    "type": "object",
    "required": ["urls"],
    "properties": {
        "urls": {"type": "array", "items": {"type": "string"}},
        "username": {"type": "string", "description": "<expiry-unix>:<userId>"},
        "credential": {"type": "string", "description": "base64(HMAC-SHA1(secret, username))"},
    },
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = params
    if secured:
        operation["security"] = _SECURED
    return operation


def openapi_document() -> dict[str, Any]:
    """Every REST route with its exact error strings."""
    # Imported here: the recordings module builds its paths with this module's helpers.
    from .recordings.openapi_paths import recording_paths

    class_id_body = _body(["classId"], {"classId": {"type": "string"}})
    room = {
        "type": "object",
        "properties": {
            "classId": _ID,
            "activeRoomId": {"type": ["string", "null"]},
            "isActive": {"type": "boolean"},
            "startedAt": {"type": ["string", "null"]},
            "sessionId": {"type": ["string", "null"]},
        },
    }
    started = {
        "type": "object",
        "properties": {"classId": _ID, "roomId": _ID, "sessionId": _ID, "startedAt": _TIME},
    }
    session_item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "sessionId": _ID,
            "roomId": _ID,
            "startedAt": _TIME,
            "endedAt": {"type": ["string", "null"]},
            "isActive": {"type": "boolean"},
            "summary": {"type": ["object", "null"]},
        },
    }
    student_row = {
        "type": "object",
        "properties": {
            "studentId": _ID,
            "status": {"enum": ["present", "absent", "late", None]},
            "source": {"enum": ["teacher", "presence", None]},
            "firstJoin": {"type": ["string", "null"]},
            "lastLeave": {"type": ["string", "null"]},
            "presenceSeconds": {"type": "number"},
            "cameraSeconds": {"type": "number"},
            "micSeconds": {"type": "number"},
            "talkSeconds": {"type": "number"},
            "intervals": {"type": "array", "items": {"type": "array", "items": _TIME}},
            "override": {"type": ["object", "null"]},
        },
    }
    paths: dict[str, Any] = {
        "/auth/signup": {
            "post": _op(
                "Create an account",
                {
                    **_success("201", _USER, "The new account (no password field)"),
                    **_failures(_SCHEMA, (400, errors.EMAIL_EXISTS)),
                },
                body=_body(
                    ["name", "email", "password", "role"],
                    {
                        "name": {"type": "string"},
                        "email": {"type": "string", "format": "email"},
                        "password": {"type": "string", "minLength": 6},
                        "role": {"enum": ["teacher", "student"]},
                    },
                ),
                secured=False,
            )
        },
        "/auth/login": {
            "post": _op(
                "Log in for an RS256 token",
                {
                    **_success(
                        "200",
                        {"type": "object", "properties": {"token": {"type": "string"}}},
                        "A bearer token",
                    ),
                    **_failures(_SCHEMA, (400, errors.BAD_LOGIN)),
                },
                body=_body(
                    ["email", "password"],
                    {"email": {"type": "string"}, "password": {"type": "string"}},
                ),
                secured=False,
            )
        },
        "/auth/me": {
            "get": _op(
                "The current user",
                {**_success("200", _USER, "The current user"), **_failures(_AUTH)},
            )
        },
        "/class": {
            "post": _op(
                "Create a class (teacher)",
                {**_success("201", _CLASS, "The class"), **_failures(_SCHEMA, _AUTH, _TEACHER)},
                body=_body(["className"], {"className": {"type": "string"}}),
            )
        },
        "/class/{id}/add-student": {
            "post": _op(
                "Enrol a student (owning teacher)",
                {
                    **_success("200", _CLASS, "The class"),
                    **_failures(
                        _SCHEMA, _AUTH, _TEACHER, _OWNER, _NO_CLASS, (404, errors.STUDENT_NOT_FOUND)
                    ),
                },
                body=_body(["studentId"], {"studentId": {"type": "string"}}),
                params=_CLASS_ID,
            )
        },
        "/class/{id}": {
            "get": _op(
                "A class with its students (owner or enrolled)",
                {
                    **_success(
                        "200",
                        {
                            **_CLASS,
                            "properties": {
                                **_CLASS["properties"],
                                "students": {"type": "array", "items": _STUDENT},
                            },
                        },
                        "The class",
                    ),
                    **_failures(_AUTH, _OWNER, _NO_CLASS),
                },
                params=_CLASS_ID,
            )
        },
        "/class/{id}/room": {
            "get": _op(
                "The class's active video room",
                {**_success("200", room, "Room status"), **_failures(_AUTH, _OWNER, _NO_CLASS)},
                params=_CLASS_ID,
            )
        },
        "/class/{id}/my-attendance": {
            "get": _op(
                "My status in the latest finished session",
                {
                    **_success(
                        "200",
                        {
                            "type": "object",
                            "properties": {
                                "classId": _ID,
                                "status": {"enum": ["present", "absent", "late", None]},
                            },
                        },
                        "Status or null",
                    ),
                    **_failures(
                        _AUTH, (403, errors.STUDENT_ONLY), (403, errors.NOT_ENROLLED), _NO_CLASS
                    ),
                },
                params=_CLASS_ID,
            )
        },
        "/classes": {
            "get": _op(
                "My classes (owned or enrolled)",
                {
                    **_success("200", {"type": "array", "items": _CLASS}, "Classes"),
                    **_failures(_AUTH),
                },
            )
        },
        "/students": {
            "get": _op(
                "Every student (teacher)",
                {
                    **_success("200", {"type": "array", "items": _STUDENT}, "Students"),
                    **_failures(_AUTH, _TEACHER),
                },
            )
        },
        "/attendance/start": {
            "post": _op(
                "Start the session and its video room",
                {
                    **_success("200", started, "The new session"),
                    **_failures(
                        _SCHEMA,
                        _AUTH,
                        _TEACHER,
                        _OWNER,
                        _NO_CLASS,
                        (409, errors.SESSION_ALREADY_ACTIVE),
                    ),
                },
                body=class_id_body,
            )
        },
        "/attendance/end": {
            "post": _op(
                "End the session and persist attendance (as WS DONE)",
                {
                    **_success("200", _SUMMARY, "Counts over enrolled students"),
                    **_failures(
                        _SCHEMA, _AUTH, _TEACHER, _OWNER, _NO_CLASS, (409, errors.NO_ACTIVE_SESSION)
                    ),
                },
                body=class_id_body,
            )
        },
        "/class/{id}/sessions": {
            "get": _op(
                "Every session of the class, newest first (owning teacher)",
                {
                    **_success("200", {"type": "array", "items": session_item}, "Sessions"),
                    **_failures(_AUTH, _TEACHER, _OWNER, _NO_CLASS),
                },
                params=_CLASS_ID,
            )
        },
        "/class/{id}/sessions/{session_id}": {
            "get": _op(
                "One session with every student's status, source and presence detail",
                {
                    **_success(
                        "200",
                        {
                            **session_item,
                            "properties": {
                                **session_item["properties"],
                                "students": {"type": "array", "items": student_row},
                            },
                        },
                        "Detail",
                    ),
                    **_failures(_AUTH, _TEACHER, _OWNER, _NO_CLASS, _NO_SESSION),
                },
                params=_SESSION_PARAMS,
            )
        },
        "/class/{id}/sessions/{session_id}/attendance.csv": {
            "get": _op(
                "The same detail as CSV",
                {
                    "200": {"description": "CSV", "content": {"text/csv": {}}},
                    **_failures(_AUTH, _TEACHER, _OWNER, _NO_CLASS, _NO_SESSION),
                },
                params=_SESSION_PARAMS,
            )
        },
        "/class/{id}/my-history": {
            "get": _op(
                "My status and presence in every finished session (enrolled student)",
                {
                    **_success("200", {"type": "array", "items": student_row}, "History"),
                    **_failures(
                        _AUTH, (403, errors.STUDENT_ONLY), (403, errors.NOT_ENROLLED), _NO_CLASS
                    ),
                },
                params=_CLASS_ID,
            )
        },
        "/class/{id}/settings": {
            "put": _op(
                "Change the attendance policy and recording access (owning teacher)",
                {
                    **_success("200", _CLASS, "The class with its settings"),
                    **_failures(_SCHEMA, _AUTH, _TEACHER, _OWNER, _NO_CLASS),
                },
                body=_body(
                    [],
                    {
                        "presentRatio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "lateAfterSeconds": {"type": "integer", "minimum": 0, "maximum": 86400},
                        "allowStudentRecordings": {"type": "boolean"},
                    },
                ),
                params=_CLASS_ID,
            )
        },
        **recording_paths(),
        "/.well-known/jwks.json": {
            "get": _op(
                "Public keys of local tokens", {"200": {"description": "JWKS"}}, secured=False
            )
        },
        "/openapi.json": {
            "get": _op("This document", {"200": {"description": "OpenAPI"}}, secured=False)
        },
        "/health": {"get": _op("Liveness", {"200": {"description": "ok"}}, secured=False)},
        "/ice-servers": {
            "get": _op(
                "STUN/TURN servers for RTCPeerConnection, with a fresh TURN credential of mine",
                {
                    **_success(
                        "200",
                        {
                            "type": "object",
                            "required": ["iceServers", "ttl"],
                            "properties": {
                                "iceServers": {"type": "array", "items": _ICE_SERVER},
                                "ttl": {"type": ["integer", "null"]},
                            },
                        },
                        "ttl: seconds the TURN credential can start allocations (null: no TURN)",
                    ),
                    **_failures(_AUTH),
                },
            )
        },
        "/metrics": {
            "get": {
                "summary": "Server metrics in Prometheus text format (operators)",
                "description": (
                    "With METRICS_TOKEN set, send Authorization: Bearer <METRICS_TOKEN>; "
                    "without it, only loopback clients may scrape. 404 when METRICS_ENABLED "
                    "is false."
                ),
                "security": [{"metricsToken": []}, {}],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition (OpenMetrics if accepted)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_failures(
                        (401, errors.METRICS_UNAUTHORIZED),
                        (403, errors.METRICS_LOOPBACK_ONLY),
                        (404, "Not found"),
                    ),
                },
            }
        },
        "/ws": {
            "get": _op(
                "The class WebSocket (token in ?token=, optional ?classId=)",
                {"101": {"description": "Switching protocols"}},
                params=[
                    {
                        "name": "token",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "classId",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                secured=False,
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Classroom SFU",
            "version": "0.1.0",
            "description": "Classroom REST API; the WebSocket protocol is in docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "metricsToken": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Failure": {
                    "type": "object",
                    "required": ["success", "error"],
                    "properties": {"success": {"const": False}, "error": {"type": "string"}},
                }
            },
        },
    }

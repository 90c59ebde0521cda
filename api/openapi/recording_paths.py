"""``/class/{id}/recordings/*``: starting, stopping, listing, downloading and deleting."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..recordings.service import (
    FILE_NOT_FOUND,
    NOT_COMPOSED,
    NOT_RECORDING,
    NOT_SHARED,
    RECORDING_ACTIVE,
    RECORDING_NOT_FOUND,
    ROOM_NOT_OPEN,
    STILL_RECORDING,
    STORAGE_FULL,
)
from .schema import AUTH, CLASS_ID, HEAVY, ID, NO_CLASS, OWNER, TEACHER, failures, op, success

_NO_RECORDING = (404, RECORDING_NOT_FOUND)
_READERS = (AUTH, OWNER, (403, errors.NOT_ENROLLED), (403, NOT_SHARED), NO_CLASS)
_RID = [
    *CLASS_ID,
    {
        "name": "rid",
        "in": "path",
        "required": True,
        "schema": ID,
        "description": "a recording id; any other (but start and stop, the routes above) "
        "answers 404 Recording not found",
    },
]
_TOKEN = {
    "name": "token",
    "in": "query",
    "required": False,
    "schema": {"type": "string"},
    "description": "the bearer token, for players that cannot send headers",
}
_FILE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "userId": {"type": "string"},
        "kind": {"enum": ["audio", "video"]},
        "offset": {"type": "number", "description": "seconds after the recording started"},
        "duration": {"type": "number"},
        "size": {"type": "integer"},
        "source": {
            "enum": ["microphone", "camera", "screen"],
            "description": "what the track carried: a screen share is a video file apart "
            "from the camera",
        },
    },
}
RECORDING = {
    "type": "object",
    "properties": {
        "recordingId": {"type": "string"},
        "classId": {"type": "string"},
        "sessionId": {"type": "string"},
        "startedBy": {"type": "string"},
        "startedAt": {"type": "string", "format": "date-time"},
        "stoppedAt": {"type": ["string", "null"], "format": "date-time"},
        "status": {"enum": ["recording", "stopped"]},
        "stopReason": {"type": ["string", "null"]},
        "participants": {"type": "array", "items": {"type": "string"}},
        "files": {"type": "array", "items": _FILE},
        "job": {
            "type": "object",
            "properties": {
                "status": {"enum": ["pending", "running", "done", "failed"]},
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "error": {"type": ["string", "null"]},
                "file": {"type": ["string", "null"]},
                "size": {"type": ["integer", "null"]},
                "duration": {"type": ["number", "null"]},
            },
        },
    },
}
_MEDIA = {
    "200": {"description": "The file", "content": {"video/x-matroska": {}, "video/webm": {}}},
    "206": {"description": "Partial content (Range: bytes=...)"},
    "416": {"description": "Range not satisfiable"},
}


def recording_paths() -> dict[str, Any]:
    """Every recording route with its exact error strings."""
    return {
        "/class/{id}/recordings/start": {
            "post": op(
                "Record the class's live room (owning teacher); the room hears RECORDING",
                {
                    **success("201", RECORDING, "The new recording"),
                    **failures(
                        AUTH,
                        TEACHER,
                        OWNER,
                        NO_CLASS,
                        (409, errors.NO_ACTIVE_SESSION),
                        (409, ROOM_NOT_OPEN),
                        (409, RECORDING_ACTIVE),
                        (507, STORAGE_FULL),
                        HEAVY,
                    ),
                },
                params=CLASS_ID,
            )
        },
        "/class/{id}/recordings/stop": {
            "post": op(
                "Stop the recording (owning teacher); the compose job starts",
                {
                    **success("200", RECORDING, "The stopped recording"),
                    **failures(AUTH, TEACHER, OWNER, NO_CLASS, (409, NOT_RECORDING)),
                },
                params=CLASS_ID,
            )
        },
        "/class/{id}/recordings": {
            "get": op(
                "The class's recordings, newest first (owner; students if the class allows)",
                {
                    **success("200", {"type": "array", "items": RECORDING}, "Recordings"),
                    **failures(*_READERS),
                },
                params=CLASS_ID,
            )
        },
        "/class/{id}/recordings/{rid}": {
            "get": op(
                "One recording with its files and compose job status",
                {
                    **success("200", RECORDING, "The recording"),
                    **failures(*_READERS, _NO_RECORDING),
                },
                params=_RID,
            ),
            "delete": op(
                "Delete the recording's files and metadata (owning teacher)",
                {
                    **success("200", {"type": "object"}, "{recordingId, deleted: true}"),
                    **failures(
                        AUTH, TEACHER, OWNER, NO_CLASS, _NO_RECORDING, (409, STILL_RECORDING)
                    ),
                },
                params=_RID,
            ),
        },
        "/class/{id}/recordings/{rid}/files/{name}": {
            "get": op(
                "Download one participant's track segment (Matroska), with Range support",
                {**_MEDIA, **failures(*_READERS, _NO_RECORDING, (404, FILE_NOT_FOUND))},
                params=[
                    *_RID,
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    _TOKEN,
                ],
            )
        },
        "/class/{id}/recordings/{rid}/composed": {
            "get": op(
                "Download the composed grid video (WebM), with Range support",
                {**_MEDIA, **failures(*_READERS, _NO_RECORDING, (409, NOT_COMPOSED))},
                params=[*_RID, _TOKEN],
            )
        },
    }

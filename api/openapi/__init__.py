"""The OpenAPI 3.1 description of the REST surface, served at ``/openapi.json``.

One module per resource describes its routes with their exact error strings
(:mod:`.auth_paths`, :mod:`.class_paths`, :mod:`.attendance_paths`, :mod:`.recording_paths`,
:mod:`.meta_paths`), built from the shared pieces in :mod:`.schema`.
"""

from __future__ import annotations

from typing import Any

from ..connections import RETRY_AFTER_SECONDS, TOO_MANY_CONNECTIONS
from .attendance_paths import attendance_paths
from .auth_paths import auth_paths
from .class_paths import class_paths
from .meta_paths import meta_paths
from .recording_paths import recording_paths

__all__ = ["openapi_document"]


def openapi_document() -> dict[str, Any]:
    """Every REST route with its exact error strings."""
    paths = {
        **auth_paths(),
        **class_paths(),
        **attendance_paths(),
        **recording_paths(),
        **meta_paths(),
    }
    for operations in paths.values():
        for operation in operations.values():
            _may_be_refused_at_the_door(operation["responses"])
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


def _may_be_refused_at_the_door(responses: dict[str, Any]) -> None:
    """Any request can meet the connection cap (`api.connections`): a ``503`` with
    ``Retry-After``, before any route runs."""
    entry = responses.setdefault(
        "503",
        {
            "description": "",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Failure"}}},
        },
    )
    entry["description"] = " | ".join(filter(None, [entry["description"], TOO_MANY_CONNECTIONS]))
    entry.setdefault("headers", {})["Retry-After"] = {
        "description": f"Seconds to wait before connecting again ({RETRY_AFTER_SECONDS})",
        "schema": {"type": "integer"},
    }

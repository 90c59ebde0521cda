"""Request body validation: every failure is one ``InvalidRequest(INVALID_SCHEMA)``."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .errors import INVALID_SCHEMA, InvalidRequest, PayloadTooLarge

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 200
MAX_PASSWORD = 1024


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or ``InvalidRequest``."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("Request body too large") from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(INVALID_SCHEMA) from None
    if not isinstance(body, dict):
        raise InvalidRequest(INVALID_SCHEMA)
    return body


def text(body: dict[str, Any], name: str, *, max_length: int = MAX_TEXT) -> str:
    """A required, non-blank string field (surrounding spaces removed)."""
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidRequest(INVALID_SCHEMA)
    return value.strip()


def email(body: dict[str, Any], name: str = "email") -> str:
    value = text(body, name, max_length=254).lower()
    if not _EMAIL.match(value):
        raise InvalidRequest(INVALID_SCHEMA)
    return value


def password(body: dict[str, Any], name: str = "password", *, min_length: int = 6) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not min_length <= len(value) <= MAX_PASSWORD:
        raise InvalidRequest(INVALID_SCHEMA)
    return value


def choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name)
    if value not in allowed:
        raise InvalidRequest(INVALID_SCHEMA)
    assert isinstance(value, str)
    return value

"""Request body validation: every failure is one ``InvalidRequest(INVALID_SCHEMA)``."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from .errors import INVALID_SCHEMA, InvalidRequest, PayloadTooLarge, RequestTimeout

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 200
MAX_ID = 64
MAX_EMAIL = 254
MAX_PASSWORD = 1024
MIN_PASSWORD = 6
BODY_TOO_SLOW = "Request body not received in time"
BODY_SECONDS = web.AppKey("body_seconds", float)
"""How long a handler waits for a whole request body (`Settings.http_body_seconds`)."""
MAX_JSON_DEPTH = 32
"""Nesting levels a request body or WebSocket frame may have (the deepest the API reads
is 4: a frame's data, a map of tracks, a track, its fields)."""


def loads_text(raw: str | bytes) -> Any:
    """JSON as the API accepts it: ``ValueError`` unless `raw` is UTF-8 JSON at most
    `MAX_JSON_DEPTH` deep whose every string (keys included) is Unicode text, i.e. holds
    no lone surrogate from a ``\\ud800`` escape (it could not be stored or hashed)."""
    try:
        value = json.loads(raw)
    except RecursionError:  # nested deeper than the decoder's stack allows
        raise ValueError("JSON nested too deep") from None
    # Iterative, so that a structure just under the decoder's limit cannot exhaust ours.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError("JSON nested too deep")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                pending += ((child, depth + 1) for child in item.values())
            else:
                pending += ((child, depth + 1) for child in item)
    return value


def _check_text(value: str) -> None:
    if not value.isascii():
        value.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or ``InvalidRequest``."""
    try:
        async with asyncio.timeout(request.app.get(BODY_SECONDS, 10.0)):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("Request body too large") from None
    except TimeoutError:  # a body trickled in (slowloris): the connection is let go
        raise RequestTimeout(BODY_TOO_SLOW) from None
    try:
        body = loads_text(raw)
    except ValueError:  # UnicodeDecodeError and UnicodeEncodeError included
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
    value = text(body, name, max_length=MAX_EMAIL).lower()
    if not _EMAIL.match(value):
        raise InvalidRequest(INVALID_SCHEMA)
    return value


def password(
    body: dict[str, Any], name: str = "password", *, min_length: int = MIN_PASSWORD
) -> str:
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

"""Request body validation: every failure is one ``InvalidRequest(INVALID_SCHEMA)``."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from .errors import INVALID_SCHEMA, InvalidRequest, PayloadTooLarge, RequestTimeout

SPACES = "\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
SPACES += "\u2028\u2029\u202f\u205f\u3000\ufeff"
"""What JSON Schema's patterns (ECMA-262) call a space: surrounding ones are dropped from
text fields. Python's ``str.strip()`` and ``\\s`` disagree with it (they take U+001C to
U+001F and U+0085, not U+FEFF), and the OpenAPI document's patterns must mean exactly
what the server checks, so both use this set."""
SPACE_CLASS = "".join(f"\\u{ord(c):04x}" for c in SPACES)
"""`SPACES` as the body of a regex character class that ECMA-262 and Python read alike."""
_CONTROL_CLASS = r"\x00-\x1f\x7f-\x9f"
_EMAIL_PART = f"[^@{SPACE_CLASS}{_CONTROL_CLASS}]+"
EMAIL_PATTERN = f"^[{SPACE_CLASS}]*{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}[{SPACE_CLASS}]*$"
"""An email field: ``local@domain.tld`` without spaces, ``@`` or control characters in its
parts, surrounding spaces allowed (and dropped). The OpenAPI document states it as is."""
NOT_BLANK_PATTERN = f"[^{SPACE_CLASS}]"
"""A text field holds something besides spaces."""
_EMAIL = re.compile(EMAIL_PATTERN)
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
    if not isinstance(value, str) or not value.strip(SPACES) or len(value) > max_length:
        raise InvalidRequest(INVALID_SCHEMA)
    return value.strip(SPACES)


def email(body: dict[str, Any], name: str = "email") -> str:
    """An address as `EMAIL_PATTERN` reads it, lowercased, without surrounding spaces."""
    value = body.get(name)
    if not isinstance(value, str) or len(value) > MAX_EMAIL or not _EMAIL.fullmatch(value):
        raise InvalidRequest(INVALID_SCHEMA)
    return value.strip(SPACES).lower()


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

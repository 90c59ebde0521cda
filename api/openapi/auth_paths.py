"""``/auth/*``: accounts and tokens."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..auth.throttle import TOO_MANY_ATTEMPTS
from .schema import (
    AUTH,
    EMAIL,
    SCHEMA,
    USER,
    body,
    failures,
    op,
    password_field,
    success,
    text_field,
)

THROTTLED = (429, TOO_MANY_ATTEMPTS)
"""Too many sign-ups or logins from one address, or failed logins for one account from it;
the ``Retry-After`` header says in how many seconds to try again."""


def auth_paths() -> dict[str, Any]:
    return {
        "/auth/signup": {
            "post": op(
                "Create an account",
                {
                    **success("201", USER, "The new account (no password field)"),
                    **failures(SCHEMA, (400, errors.EMAIL_EXISTS), THROTTLED),
                },
                body=body(
                    ["name", "email", "password", "role"],
                    {
                        "name": text_field(),
                        "email": EMAIL,
                        "password": password_field(),
                        "role": {"enum": ["teacher", "student"]},
                    },
                ),
                secured=False,
            )
        },
        "/auth/login": {
            "post": op(
                "Log in for an RS256 token",
                {
                    **success(
                        "200",
                        {"type": "object", "properties": {"token": {"type": "string"}}},
                        "A bearer token",
                    ),
                    **failures(SCHEMA, (400, errors.BAD_LOGIN), THROTTLED),
                },
                body=body(
                    ["email", "password"],
                    {"email": EMAIL, "password": password_field(min_length=1)},
                ),
                secured=False,
            )
        },
        "/auth/me": {
            "get": op(
                "The current user",
                {**success("200", USER, "The current user"), **failures(AUTH)},
            )
        },
    }

"""Helpers every route uses: the success envelope and the authenticated user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..auth.tokens import token_from_header
from ..models import User
from ..services import SERVICES, Services


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data}, status=status)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def current_user(request: web.Request) -> User:
    """The user behind the request's token, or ``Unauthorized``."""
    token = token_from_header(request.headers.get("Authorization"))
    return await services(request).authenticator.authenticate(token)

"""``/auth``: local sign-up and login, and who am I."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .. import validation
from ..auth.passwords import DECOY_HASH, hash_password, verify_password
from ..errors import BAD_LOGIN, EMAIL_EXISTS, Conflict, InvalidRequest
from ..models import ROLES
from .common import current_user, ok, services

LOCAL_ACCOUNTS_DISABLED = "Local accounts are disabled; sign in with Auth0"


async def signup(request: web.Request) -> web.Response:
    body = await validation.json_object(request)
    name = validation.text(body, "name")
    email = validation.email(body)
    password = validation.password(body)
    role = validation.choice(body, "role", ROLES)
    app = services(request)
    if app.settings.auth0_enabled:
        raise InvalidRequest(LOCAL_ACCOUNTS_DISABLED)
    password_hash = await asyncio.to_thread(hash_password, password)
    try:
        user = await app.store.create_user(
            name=name,
            email=email,
            role="teacher" if role == "teacher" else "student",
            password_hash=password_hash,
        )
    except Conflict:
        # The contract answers a taken email with 400, not the store's 409.
        raise InvalidRequest(EMAIL_EXISTS) from None
    app.pushes.user_signed_up(user)
    return ok(user.public(), status=201)


async def login(request: web.Request) -> web.Response:
    body = await validation.json_object(request)
    email = validation.email(body)
    password = validation.password(body, min_length=1)
    app = services(request)
    if app.settings.auth0_enabled:
        raise InvalidRequest(LOCAL_ACCOUNTS_DISABLED)
    user = await app.store.get_user_by_email(email)
    stored = user.password_hash if user and user.password_hash else DECOY_HASH
    verified = await asyncio.to_thread(verify_password, password, stored)
    if user is None or user.password_hash is None or not verified:
        raise InvalidRequest(BAD_LOGIN)
    return ok({"token": app.issuer.issue(user)})


async def me(request: web.Request) -> web.Response:
    return ok((await current_user(request)).public())


def setup(app: web.Application) -> None:
    app.router.add_post("/auth/signup", signup)
    app.router.add_post("/auth/login", login)
    app.router.add_get("/auth/me", me)

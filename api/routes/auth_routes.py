"""``/auth``: local sign-up and login, and who am I."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from .. import validation
from ..errors import BAD_LOGIN, EMAIL_EXISTS, Conflict, InvalidRequest
from ..models import ROLES
from .common import current_user, ok, services

LOCAL_ACCOUNTS_DISABLED = "Local accounts are disabled; sign in with Auth0"


def client_address(request: web.Request, trusted_proxies: frozenset[str]) -> str:
    """The client's address for throttling: the peer's, or, when the peer is one of
    `trusted_proxies`, the nearest address in ``X-Forwarded-For`` that is not (the proxy
    appends the address it saw; what a client wrote before it is not believed)."""
    peer = request.remote or "unknown"
    if peer not in trusted_proxies:
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if hop in trusted_proxies:
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            break  # a proxy wrote no address there: rather the proxy's than a made-up one
    return peer


async def signup(request: web.Request) -> web.Response:
    body = await validation.json_object(request)
    name = validation.text(body, "name")
    email = validation.email(body)
    password = validation.password(body)
    role = validation.choice(body, "role", ROLES)
    app = services(request)
    if app.settings.auth0_enabled:
        raise InvalidRequest(LOCAL_ACCOUNTS_DISABLED)
    app.throttle.check_signup(client_address(request, app.settings.trusted_proxies))
    password_hash = await app.passwords.hash(password)
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
    address = client_address(request, app.settings.trusted_proxies)
    app.throttle.check_login(address, email)
    user = await app.store.get_user_by_email(email)
    stored = user.password_hash if user is not None else None
    # Without a stored hash the decoy is checked: the same time as a wrong password.
    verified = await app.passwords.check(password, stored)
    if user is None or stored is None or not verified:
        app.throttle.login_failed(address, email)
        raise InvalidRequest(BAD_LOGIN)
    app.throttle.login_succeeded(address, email)
    if not app.passwords.hasher.is_current(stored):
        # Made at an older cost: the password is at hand now, so store it at today's.
        await app.store.set_password_hash(user.id, await app.passwords.hash(password))
    return ok({"token": app.issuer.issue(user)})


async def me(request: web.Request) -> web.Response:
    return ok((await current_user(request)).public())


def setup(app: web.Application) -> None:
    app.router.add_post("/auth/signup", signup)
    app.router.add_post("/auth/login", login)
    app.router.add_get("/auth/me", me)

"""Issuing local RS256 tokens and verifying bearer tokens (local or Auth0) into a user."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import jwt

from ..config import Settings
from ..errors import UNAUTHORIZED, Conflict, Unauthorized
from ..models import ROLES, Role, User
from ..store import Store
from .jwks import JwksCache
from .keys import SigningKey

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
_BEARER = re.compile(r"^\s*(?:Bearer\s+)?(\S+)\s*$", re.IGNORECASE)


def token_from_header(value: str | None) -> str | None:
    """Accept ``Authorization: <token>`` and ``Authorization: Bearer <token>``."""
    if not value:
        return None
    match = _BEARER.match(value)
    return match.group(1) if match else None


class TokenIssuer:
    """Signs the tokens handed out by ``POST /auth/login`` in local mode."""

    def __init__(self, key: SigningKey, settings: Settings) -> None:
        self._key = key
        self._settings = settings

    def issue(self, user: User) -> str:
        now = int(time.time())
        claims = {
            "sub": user.id,
            "role": user.role,
            "name": user.name,
            "iss": self._settings.jwt_issuer,
            "aud": self._settings.jwt_audience,
            "iat": now,
            "exp": now + self._settings.token_ttl_seconds,
        }
        return jwt.encode(
            claims, self._key.private_key, algorithm=ALGORITHM, headers={"kid": self._key.kid}
        )


class Authenticator:
    """Turns a bearer token into a stored :class:`User`, or raises ``Unauthorized``.

    Local mode checks our own key; Auth0 mode checks the tenant's JWKS and provisions
    the user on first sight. Only RS256 is accepted (never ``none`` or HS256).
    """

    def __init__(
        self, settings: Settings, store: Store, key: SigningKey, jwks: JwksCache | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._key = key
        self._jwks = jwks
        self.provisioned_hooks: list[Callable[[User], None]] = []
        """Told of every user provisioned on first sight (``STUDENT_SIGNED_UP`` pushes)."""

    async def authenticate(self, token: str | None) -> User:
        if not token:
            raise Unauthorized(UNAUTHORIZED)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized(UNAUTHORIZED) from None
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise Unauthorized(UNAUTHORIZED)
        if self._jwks is not None:
            return await self._authenticate_auth0(token, header["kid"])
        return await self._authenticate_local(token, header["kid"])

    def _decode(self, token: str, key: Any, audience: str, issuer: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=issuer,
                options={"require": ["sub", "iat", "exp", "iss", "aud"]},
                leeway=5,
            )
        except jwt.PyJWTError:
            raise Unauthorized(UNAUTHORIZED) from None
        if not isinstance(claims.get("sub"), str):
            raise Unauthorized(UNAUTHORIZED)
        return claims

    async def _authenticate_local(self, token: str, kid: str) -> User:
        if kid != self._key.kid:
            raise Unauthorized(UNAUTHORIZED)
        claims = self._decode(
            token, self._key.public_key, self._settings.jwt_audience, self._settings.jwt_issuer
        )
        user = await self._store.get_user(claims["sub"])
        if user is None or user.external_id is not None:
            raise Unauthorized(UNAUTHORIZED)
        return user

    async def _authenticate_auth0(self, token: str, kid: str) -> User:
        assert self._jwks is not None and self._settings.auth0_audience is not None
        key = await self._jwks.get(kid)
        if key is None:
            raise Unauthorized(UNAUTHORIZED)
        claims = self._decode(
            token, key, self._settings.auth0_audience, self._settings.auth0_issuer
        )
        existing = await self._store.get_user_by_external_id(claims["sub"])
        if existing is not None:
            return existing
        return await self._provision(claims)

    async def _provision(self, claims: dict[str, Any]) -> User:
        namespace = self._settings.auth0_namespace
        role = claims.get(f"{namespace}/role")
        if role not in ROLES:
            raise Unauthorized(UNAUTHORIZED)
        sub: str = claims["sub"]
        email = _first_str(claims, "email", f"{namespace}/email")
        if email is None:
            # .invalid is reserved (RFC 2606): a unique, never-routable stand-in.
            email = re.sub(r"[^a-z0-9._-]", "-", sub.lower()) + "@auth0.invalid"
        name = _first_str(claims, "name", f"{namespace}/name", "nickname") or email.split("@")[0]
        typed_role: Role = "teacher" if role == "teacher" else "student"
        try:
            user = await self._store.create_user(
                name=name, email=email.lower(), role=typed_role, external_id=sub
            )
        except Conflict:
            # A concurrent first request provisioned the same user, or the email is taken.
            found = await self._store.get_user_by_external_id(sub)
            if found is None:
                log.warning("Auth0 user %s has an email already used by another account", sub)
                raise Unauthorized(UNAUTHORIZED) from None
            return found
        log.info("provisioned Auth0 user %s as %s", sub, user.id)
        for hook in self.provisioned_hooks:
            hook(user)
        return user


def _first_str(claims: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None

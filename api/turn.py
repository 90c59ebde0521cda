"""TURN REST credentials (coturn ``use-auth-secret``) and the ICE server lists we hand out.

The server and coturn share a secret. A credential is valid until the expiry written into
its username, ``"<expiry-unix>:<user id>"``; its password is
``base64(HMAC-SHA1(secret, username))``. coturn recomputes the password and refuses an
allocation (401) when it does not match or the expiry has passed; an allocation made in
time lives on (refreshes are not re-checked), so a short lifetime only bounds how long a
leaked credential can start new relays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from sfu import IceServer

from .ice_settings import IceSettings

SFU_TURN_USER = "sfu"
"""The user id in the TURN usernames of the server's own peer connections."""


@dataclass(frozen=True)
class TurnCredential:
    """One time-limited TURN username/password pair."""

    username: str
    password: str
    expires_at: int
    """Unix time after which coturn refuses new allocations with it."""


def turn_password(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``, as coturn computes it."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_credential(
    secret: str, user_id: str, ttl_seconds: int, now: float | None = None
) -> TurnCredential:
    """A credential for `user_id` valid for `ttl_seconds` from `now` (default: the clock)."""
    if ":" in user_id:
        raise ValueError("a TURN user id cannot contain ':'")
    expires_at = int(time.time() if now is None else now) + ttl_seconds
    username = f"{expires_at}:{user_id}"
    return TurnCredential(username, turn_password(secret, username), expires_at)


def ice_servers_for(
    ice: IceSettings, user_id: str, now: float | None = None
) -> list[dict[str, Any]]:
    """The ``iceServers`` list for one user, as ``RTCPeerConnection`` takes it.

    STUN URLs first (no credentials), then every TURN URL with one fresh credential; an
    empty list when nothing is configured (host candidates only).
    """
    servers: list[dict[str, Any]] = []
    if ice.stun_urls:
        servers.append({"urls": list(ice.stun_urls)})
    if ice.turn_enabled:
        assert ice.turn_secret is not None
        credential = turn_credential(ice.turn_secret, user_id, ice.turn_ttl_seconds, now)
        servers.append(
            {
                "urls": list(ice.turn_urls),
                "username": credential.username,
                "credential": credential.password,
            }
        )
    return servers


def sfu_ice_servers(ice: IceSettings) -> tuple[IceServer, ...]:
    """The servers the SFU's own peer connections use (fresh credentials for user
    `SFU_TURN_USER` on every call, so long-lived rooms never hold an expired one)."""
    return tuple(
        IceServer(tuple(s["urls"]), s.get("username"), s.get("credential"))
        for s in ice_servers_for(ice, SFU_TURN_USER)
    )

"""ICE deployment settings: STUN/TURN servers handed to clients, and the server's own
candidates (UDP port range, connect timeout). Read by `api.config.load_settings`.

Kept apart from `api.config` so that module only gains one field; errors are
`ValueError`s with a one-line message, which `load_settings` turns into `ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .env_values import env_number

_HOST = r"(?:[A-Za-z0-9.-]+|\d{1,3}(?:\.\d{1,3}){3})"
_TURN_URL = re.compile(rf"turns?:{_HOST}(?::\d{{1,5}})?(?:\?transport=(?:udp|tcp))?")
_STUN_URL = re.compile(rf"stuns?:{_HOST}(?::\d{{1,5}})?")
_PORT_RANGE = re.compile(r"(\d{1,5})\s*-\s*(\d{1,5})")
DEFAULT_TURN_TTL = 3600


@dataclass(frozen=True)
class IceSettings:
    """STUN/TURN for clients (TURN REST credentials from a shared secret) and the
    server's own ICE knobs; see docs/configuration.md."""

    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl_seconds: int = DEFAULT_TURN_TTL
    stun_urls: tuple[str, ...] = ()
    sfu_use_ice_servers: bool = False
    """The server's own peer connections use the STUN/TURN servers too (user ``sfu``)."""
    port_range: tuple[int, int] | None = None
    connect_timeout_seconds: float = 20.0

    @property
    def turn_enabled(self) -> bool:
        return bool(self.turn_urls) and self.turn_secret is not None


def _urls(
    env: Mapping[str, str], name: str, pattern: re.Pattern[str], example: str
) -> tuple[str, ...]:
    urls = tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())
    for url in urls:
        if not pattern.fullmatch(url):
            raise ValueError(f"{name} entries must look like {example}, got {url!r}")
        port = re.search(r":(\d+)(?:\?|$)", url)
        if port is not None and not 1 <= int(port.group(1)) <= 65535:
            raise ValueError(f"{name} has a port out of range in {url!r}")
    return urls


def _port_range(raw: str) -> tuple[int, int] | None:
    if not raw.strip():
        return None
    match = _PORT_RANGE.fullmatch(raw.strip())
    low, high = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if match is None or not 1024 <= low <= high <= 65535:
        raise ValueError(
            f"ICE_PORT_RANGE must be LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, got {raw!r}"
        )
    return low, high


def load_ice_settings(env: Mapping[str, str]) -> IceSettings:
    """Read ``TURN_URLS``, ``TURN_SECRET``, ``TURN_TTL_SECONDS``, ``STUN_URLS``,
    ``SFU_USE_ICE_SERVERS``, ``ICE_PORT_RANGE`` and ``ICE_CONNECT_TIMEOUT_SECONDS``."""
    turn_urls = _urls(
        env, "TURN_URLS", _TURN_URL, "turn:turn.example.org:3478?transport=udp or turns:host:443"
    )
    secret = env.get("TURN_SECRET", "").strip() or None
    if turn_urls and secret is None:
        raise ValueError(
            "TURN_SECRET is required when TURN_URLS is set (coturn static-auth-secret)"
        )
    if secret is not None and not turn_urls:
        raise ValueError("TURN_SECRET is set but TURN_URLS is empty")
    ttl = env_number(env, "TURN_TTL_SECONDS", DEFAULT_TURN_TTL, 60, 86400)
    if ttl != int(ttl):
        raise ValueError(f"TURN_TTL_SECONDS must be a whole number of seconds, got {ttl:g}")
    stun_urls = _urls(env, "STUN_URLS", _STUN_URL, "stun:stun.example.org:3478")
    use_raw = env.get("SFU_USE_ICE_SERVERS", "").strip().lower()
    if use_raw not in ("", "1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"SFU_USE_ICE_SERVERS must be true or false, got {use_raw!r}")
    use = use_raw in ("1", "true", "yes", "on")
    if use and not (turn_urls or stun_urls):
        raise ValueError("SFU_USE_ICE_SERVERS needs TURN_URLS or STUN_URLS")
    return IceSettings(
        turn_urls=turn_urls,
        turn_secret=secret,
        turn_ttl_seconds=int(ttl),
        stun_urls=stun_urls,
        sfu_use_ice_servers=use,
        port_range=_port_range(env.get("ICE_PORT_RANGE", "")),
        connect_timeout_seconds=env_number(env, "ICE_CONNECT_TIMEOUT_SECONDS", 20.0, 1.0, 300.0),
    )

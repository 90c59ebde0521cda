"""Typed settings read once from the environment and validated at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .cluster.settings import ClusterSettings, load_cluster_settings
from .env_values import env_number
from .ice_settings import IceSettings, load_ice_settings


class ConfigError(Exception):
    """An environment variable has a value the server cannot run with."""


@dataclass(frozen=True)
class ThrottleSettings:
    """Sign-up and login throttling (`api.auth.throttle`); `enabled` False turns all of
    it off (load tests on loopback)."""

    enabled: bool = True
    signup_burst: int = 50
    signups_per_minute: float = 10.0
    login_burst: int = 100
    logins_per_minute: float = 60.0
    free_failures: int = 5
    max_failure_delay: float = 300.0


@dataclass(frozen=True)
class Settings:
    """Everything the server reads from its environment; see docs/configuration.md for each name."""

    host: str = "0.0.0.0"
    port: int = 3000
    data_dir: Path = Path("./data")
    mongodb_uri: str | None = None
    mongodb_db: str = "attendance"
    mongodb_timeout_seconds: float = 5.0
    # How long an SQLite write waits for a lock another connection holds (then 503).
    sqlite_busy_timeout_seconds: float = 10.0
    auth0_domain: str | None = None
    auth0_audience: str | None = None
    auth0_namespace: str = "https://liveclassroom.app"
    auth0_jwks_url: str | None = None
    auth0_jwks_min_refresh_seconds: float = 30.0
    jwt_issuer: str = "classroom-sfu"
    jwt_signing_key_file: Path | None = None
    """The RSA key local tokens are signed with (default: DATA_DIR's, created on first
    start); a cluster's nodes must share one."""
    jwt_audience: str = "classroom-sfu"
    token_ttl_seconds: int = 24 * 3600
    password_hash_cost: int | None = None
    """log2 of scrypt's N for new password hashes (None: `api.auth.passwords.DEFAULT_COST`)."""
    auth_throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    trusted_proxies: frozenset[str] = frozenset()
    # Per account: a session's report or CSV, starting or stopping a recording.
    heavy_routes_burst: int = 20
    heavy_routes_per_minute: float = 30.0
    """Reverse proxies whose ``X-Forwarded-For`` names the client (for throttling)."""
    ws_max_frame_bytes: int = 64 * 1024
    # HTTP: an idle keep-alive connection is closed after this; a request body must have
    # arrived whole this long after the handler starts reading it (else 408).
    http_keepalive_seconds: float = 75.0
    http_body_seconds: float = 10.0
    # Open HTTP connections (WebSockets included), in all and per client address.
    http_max_connections: int = 2000
    http_max_connections_per_address: int = 500
    ws_send_queue: int = 256
    # What one client may ask over WebSockets: events per second and burst per socket,
    # sockets open at once per account.
    ws_events_per_second: float = 20.0
    ws_event_burst: int = 100
    ws_max_sockets_per_user: int = 8
    log_level: str = "INFO"
    # ICE: addresses the server gathers candidates on, and the one it announces.
    ice_addresses: tuple[str, ...] = field(default_factory=tuple)
    ice_announced_address: str | None = None
    # STUN/TURN for clients, the server's UDP port range, ICE timeout: api/ice_settings.py.
    ice: IceSettings = field(default_factory=IceSettings)
    cluster: ClusterSettings | None = None
    """Cluster mode (``REDIS_URL``): api/cluster/settings.py; None: one node."""
    room_max_participants: int = 50
    # What each published track may send, per second (0: no cap): packets beyond are dropped.
    media_audio_max_kbps: int = 256
    media_audio_max_packets: int = 120
    media_video_max_kbps: int = 5000
    media_video_max_packets: int = 1000
    # Overload: new joins are refused while the event loop's median lag over 3 s is above
    # this many milliseconds (0: never; None: `api.overload.DEFAULT_LAG_LIMIT_MS`).
    overload_lag_ms: int | None = None
    # Presence: a reconnect within the grace window continues the same interval.
    presence_grace_seconds: float = 15.0
    presence_flush_seconds: float = 1.0
    # Presence writes (events, counters) a room keeps while the store is unreachable.
    presence_buffer_max: int = 10_000
    talk_threshold_dbov: int = -50
    # /metrics: off entirely, or guarded by a bearer token (else loopback clients only).
    metrics_enabled: bool = True
    metrics_token: str | None = field(default=None, repr=False)
    # Recordings: where segment and composed files go (default <data_dir>/recordings) and the
    # most bytes all recordings together may take there.
    recordings_dir: Path | None = None
    recordings_max_bytes: int = 10 * 1024**3

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def auth0_enabled(self) -> bool:
        return self.auth0_domain is not None

    @property
    def auth0_issuer(self) -> str:
        return f"https://{self.auth0_domain}/"

    @property
    def auth0_jwks(self) -> str:
        return self.auth0_jwks_url or f"https://{self.auth0_domain}/.well-known/jwks.json"

    @property
    def store_kind(self) -> str:
        return "mongodb" if self.mongodb_uri else "sqlite"

    @property
    def store_timeout_seconds(self) -> float:
        """How long one store call may wait before it fails as an outage."""
        return (
            self.mongodb_timeout_seconds if self.mongodb_uri else self.sqlite_busy_timeout_seconds
        )


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """An integer in [low, high], or None when the variable is unset or empty."""
    return _int(env, name, 0, low, high) if env.get(name) else None


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    try:
        return env_number(env, name, default, low, high)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    return raw or None


def _address(name: str, raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{name} must hold IP addresses, got {raw!r}") from None


SUBSCRIBE_ANSWER_BYTES_PER_TRACK = 560
"""Chromium's subscribe answer grows by ~535 bytes (as a JSON frame) per received track
(measured with 98 tracks: 52.5 kB; tests/browser/test_crowded_room_sdp.py)."""
SUBSCRIBE_ANSWER_BASE_BYTES = 2048


def publishers_per_frame(ws_max_frame_bytes: int) -> int:
    """How many participants publishing audio and video a subscriber's answer can cover
    before it outgrows one WebSocket frame."""
    tracks = (ws_max_frame_bytes - SUBSCRIBE_ANSWER_BASE_BYTES) // SUBSCRIBE_ANSWER_BYTES_PER_TRACK
    return max(0, tracks // 2)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); raise ``ConfigError``."""
    env = os.environ if env is None else env
    mongodb_uri = _str(env, "MONGODB_URI")
    if mongodb_uri and not mongodb_uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError("MONGODB_URI must start with mongodb:// or mongodb+srv://")
    auth0_domain = _str(env, "AUTH0_DOMAIN")
    auth0_audience = _str(env, "AUTH0_AUDIENCE")
    if auth0_domain:
        if "/" in auth0_domain or ":" in auth0_domain.split(".")[0]:
            raise ConfigError("AUTH0_DOMAIN must be a bare host name like tenant.us.auth0.com")
        if not auth0_audience:
            raise ConfigError("AUTH0_AUDIENCE is required when AUTH0_DOMAIN is set")
    log_level = (_str(env, "LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    ice_raw = _str(env, "ICE_ADDRESSES")
    ice_addresses = tuple(
        _address("ICE_ADDRESSES", part.strip())
        for part in (ice_raw or "").split(",")
        if part.strip()
    )
    announced = _str(env, "ICE_ANNOUNCED_ADDRESS")
    proxies = frozenset(
        _address("TRUSTED_PROXIES", part.strip())
        for part in (_str(env, "TRUSTED_PROXIES") or "").split(",")
        if part.strip()
    )
    key_file = Path(raw_key) if (raw_key := _str(env, "JWT_SIGNING_KEY_FILE")) else None
    if key_file is not None and not key_file.is_file():
        raise ConfigError(f"JWT_SIGNING_KEY_FILE {key_file} is not a file")
    host = _str(env, "HOST") or "0.0.0.0"
    port = _int(env, "PORT", 3000, 0, 65535)
    try:
        ice = load_ice_settings(env)
        cluster = load_cluster_settings(
            env,
            mongodb_uri=mongodb_uri,
            host=host,
            port=port,
            shared_key=key_file is not None or bool(auth0_domain),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return Settings(
        host=host,
        port=port,
        data_dir=Path(_str(env, "DATA_DIR") or "./data"),
        mongodb_uri=mongodb_uri,
        mongodb_db=_str(env, "MONGODB_DB") or "attendance",
        mongodb_timeout_seconds=_float(env, "MONGODB_TIMEOUT_SECONDS", 5.0, 0.1, 300.0),
        sqlite_busy_timeout_seconds=_float(env, "SQLITE_BUSY_TIMEOUT_SECONDS", 10.0, 0.0, 300.0),
        auth0_domain=auth0_domain,
        auth0_audience=auth0_audience,
        auth0_namespace=(_str(env, "AUTH0_NAMESPACE") or "https://liveclassroom.app").rstrip("/"),
        auth0_jwks_url=_str(env, "AUTH0_JWKS_URL"),
        auth0_jwks_min_refresh_seconds=_int(env, "AUTH0_JWKS_MIN_REFRESH_SECONDS", 30, 0, 86400),
        jwt_issuer=_str(env, "JWT_ISSUER") or "classroom-sfu",
        jwt_signing_key_file=key_file,
        jwt_audience=_str(env, "JWT_AUDIENCE") or "classroom-sfu",
        token_ttl_seconds=_int(env, "TOKEN_TTL_SECONDS", 24 * 3600, 60, 30 * 24 * 3600),
        password_hash_cost=_optional_int(env, "PASSWORD_HASH_COST", 10, 20),
        trusted_proxies=proxies,
        heavy_routes_burst=_int(env, "HEAVY_ROUTES_BURST", 20, 1, 1_000_000),
        heavy_routes_per_minute=_float(env, "HEAVY_ROUTES_PER_MINUTE", 30.0, 0.01, 1e6),
        auth_throttle=ThrottleSettings(
            enabled=_bool(env, "AUTH_THROTTLE", True),
            signup_burst=_int(env, "AUTH_SIGNUP_BURST", 50, 1, 1_000_000),
            signups_per_minute=_float(env, "AUTH_SIGNUPS_PER_MINUTE", 10.0, 0.01, 1e6),
            login_burst=_int(env, "AUTH_LOGIN_BURST", 100, 1, 1_000_000),
            logins_per_minute=_float(env, "AUTH_LOGINS_PER_MINUTE", 60.0, 0.01, 1e6),
            free_failures=_int(env, "AUTH_FREE_FAILURES", 5, 1, 1000),
            max_failure_delay=_float(env, "AUTH_MAX_FAILURE_DELAY_SECONDS", 300.0, 1.0, 86400.0),
        ),
        ws_max_frame_bytes=_int(env, "WS_MAX_FRAME_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
        http_keepalive_seconds=_float(env, "HTTP_KEEPALIVE_SECONDS", 75.0, 0.1, 86400.0),
        http_body_seconds=_float(env, "HTTP_BODY_TIMEOUT_SECONDS", 10.0, 0.1, 3600.0),
        http_max_connections=_int(env, "HTTP_MAX_CONNECTIONS", 2000, 1, 1_000_000),
        http_max_connections_per_address=_int(
            env, "HTTP_MAX_CONNECTIONS_PER_ADDRESS", 500, 1, 1_000_000
        ),
        ws_send_queue=_int(env, "WS_SEND_QUEUE", 256, 8, 65536),
        ws_events_per_second=_float(env, "WS_EVENTS_PER_SECOND", 20.0, 0.1, 100000.0),
        ws_event_burst=_int(env, "WS_EVENT_BURST", 100, 1, 1000000),
        ws_max_sockets_per_user=_int(env, "WS_MAX_SOCKETS_PER_USER", 8, 1, 10000),
        log_level=log_level,
        ice_addresses=ice_addresses,
        ice_announced_address=_address("ICE_ANNOUNCED_ADDRESS", announced) if announced else None,
        ice=ice,
        cluster=cluster,
        room_max_participants=_int(env, "ROOM_MAX_PARTICIPANTS", 50, 2, 1000),
        media_audio_max_kbps=_int(env, "MEDIA_AUDIO_MAX_KBPS", 256, 0, 10_000_000),
        media_audio_max_packets=_int(env, "MEDIA_AUDIO_MAX_PACKETS", 120, 0, 1_000_000),
        media_video_max_kbps=_int(env, "MEDIA_VIDEO_MAX_KBPS", 5000, 0, 10_000_000),
        media_video_max_packets=_int(env, "MEDIA_VIDEO_MAX_PACKETS", 1000, 0, 1_000_000),
        overload_lag_ms=_optional_int(env, "OVERLOAD_LAG_MS", 0, 60_000),
        presence_grace_seconds=_float(env, "PRESENCE_GRACE_SECONDS", 15.0, 0.0, 3600.0),
        presence_flush_seconds=_float(env, "PRESENCE_FLUSH_SECONDS", 1.0, 0.05, 60.0),
        presence_buffer_max=_int(env, "PRESENCE_BUFFER_MAX", 10_000, 100, 1_000_000),
        talk_threshold_dbov=_int(env, "TALK_THRESHOLD_DBOV", -50, -127, 0),
        metrics_enabled=_bool(env, "METRICS_ENABLED", True),
        metrics_token=_str(env, "METRICS_TOKEN"),
        recordings_dir=Path(recordings_dir)
        if (recordings_dir := _str(env, "RECORDINGS_DIR"))
        else None,
        recordings_max_bytes=_int(env, "RECORDINGS_MAX_BYTES", 10 * 1024**3, 1, 2**62),
    )

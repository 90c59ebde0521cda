"""Cluster-mode settings, read by `api.config.load_settings` when ``REDIS_URL`` is set.

Errors are `ValueError`s with a one-line message (`load_settings` turns them into
``ConfigError``), as for `api.ice_settings`.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from ..env_values import env_number
from .placement import DEFAULT_LOAD_LIMIT

NEEDS_SHARED_STORE = (
    "REDIS_URL (cluster mode) needs a store every node shares: set MONGODB_URI "
    "(the embedded SQLite store is one node's file)"
)
NEEDS_SHARED_KEY = (
    "REDIS_URL (cluster mode) needs JWT_SIGNING_KEY_FILE: every node must sign and check "
    "local tokens with the same key (or use Auth0)"
)
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


@dataclass(frozen=True)
class ClusterSettings:
    """One node of a cluster: how it is known to the others and how often it says so."""

    redis_url: str
    node_id: str
    http_url: str
    """Where the other nodes (and a client handed over) reach this node's HTTP."""
    region: str | None = None
    load_limit: float = DEFAULT_LOAD_LIMIT
    """CPU per core above which a node takes new rooms only if every node is above it."""
    heartbeat_seconds: float = 2.0
    ttl_seconds: float = 6.0
    """A node whose heartbeat is older than this is gone (killed, cut off)."""
    drain_seconds: float = 600.0
    """On SIGTERM: how long live rooms may go on here before their participants are moved."""


def load_cluster_settings(
    env: Mapping[str, str],
    *,
    mongodb_uri: str | None,
    host: str,
    port: int,
    shared_key: bool,
) -> ClusterSettings | None:
    """The node's cluster settings, or None without ``REDIS_URL`` (one node)."""
    redis_url = env.get("REDIS_URL", "").strip()
    if not redis_url:
        return None
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
    if not mongodb_uri:
        raise ValueError(NEEDS_SHARED_STORE)
    if not shared_key:
        raise ValueError(NEEDS_SHARED_KEY)
    node_id = env.get("NODE_ID", "").strip() or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    if not _NODE_ID.fullmatch(node_id):
        raise ValueError(
            "NODE_ID must be 1-63 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit, got {node_id!r}"
        )
    http_url = env.get("NODE_HTTP_URL", "").strip()
    if not http_url:
        reachable = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        http_url = f"http://{reachable}:{port}"
    elif not http_url.startswith(("http://", "https://")):
        raise ValueError(f"NODE_HTTP_URL must be an http(s):// URL, got {http_url!r}")
    heartbeat = env_number(env, "NODE_HEARTBEAT_SECONDS", 2.0, 0.1, 60.0)
    ttl = env_number(env, "NODE_TTL_SECONDS", 3 * heartbeat, 0.3, 600.0)
    if ttl < 2 * heartbeat:
        raise ValueError(
            f"NODE_TTL_SECONDS ({ttl:g}) must be at least twice NODE_HEARTBEAT_SECONDS "
            f"({heartbeat:g}): one late heartbeat must not drop a live node"
        )
    return ClusterSettings(
        redis_url=redis_url,
        node_id=node_id,
        http_url=http_url.rstrip("/"),
        region=env.get("NODE_REGION", "").strip() or None,
        load_limit=env_number(env, "CLUSTER_LOAD_LIMIT", DEFAULT_LOAD_LIMIT, 0.05, 4.0),
        heartbeat_seconds=heartbeat,
        ttl_seconds=ttl,
        drain_seconds=env_number(env, "NODE_DRAIN_SECONDS", 600.0, 0.0, 86400.0),
    )


def node_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1

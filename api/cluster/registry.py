"""The node registry in Redis, as LiveKit keeps one: every node writes its heartbeat with a
short expiry, and a node whose heartbeat has expired is gone.

Keys (``classroom:`` prefix):

- ``node:<nodeId>``: the node's `NodeInfo` as JSON, written every heartbeat with an expiry
  of ``NODE_TTL_SECONDS``; a killed node's key lapses by itself.
- ``nodes``: the set of node ids; a member whose key has lapsed is removed by whoever
  lists the nodes next.

Every heartbeat rewrites both, so a Redis that restarts empty has the whole registry back
one heartbeat later, without any node restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .placement import NodeInfo
from .settings import ClusterSettings

log = logging.getLogger(__name__)

PREFIX = "classroom:"
NODES = PREFIX + "nodes"


def node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"


def text(value: str | bytes) -> str:
    """A Redis reply as text (clients made with or without ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def live_nodes(redis: Redis) -> list[NodeInfo]:
    """Every node whose heartbeat has not expired, by node id; lapsed ones are forgotten."""
    ids = sorted(text(i) for i in await redis.smembers(NODES))  # type: ignore[misc]
    if not ids:
        return []
    values = await redis.mget([node_key(i) for i in ids])
    nodes, lapsed = [], []
    for node_id, value in zip(ids, values, strict=True):
        if value is None:
            lapsed.append(node_id)
            continue
        try:
            nodes.append(NodeInfo.from_public(json.loads(value)))
        except ValueError as error:  # JSONDecodeError is one
            log.warning("ignoring the heartbeat of node %s: %s", node_id, error)
    if lapsed:
        await redis.srem(NODES, *lapsed)  # type: ignore[misc]
    return nodes


class NodeRegistry:
    """This node's heartbeat, and the cluster as it last saw it (for ``/health``)."""

    def __init__(
        self, redis: Redis, settings: ClusterSettings, describe: Callable[[], NodeInfo]
    ) -> None:
        self.redis = redis
        self.settings = settings
        self._describe = describe
        self.nodes: list[NodeInfo] = []
        """The live nodes at the last heartbeat (this one included while Redis answers)."""
        self.seen_at: float | None = None
        self.answering_since: float | None = None
        """When Redis began answering this node's heartbeats without a failure since."""
        self.error: str | None = None
        """Why the last heartbeat failed, while Redis does not answer."""
        self.on_beat: list[Callable[[list[NodeInfo]], None]] = []
        """Told the live nodes after every heartbeat (who is gone)."""
        self.with_beat: list[Callable[[], Awaitable[None]]] = []
        """Run with every heartbeat: what this node keeps in Redis besides it (its rooms'
        placements, should Redis have restarted empty)."""
        self.heartbeats: asyncio.Task[None] | None = None
        """The heartbeat loop once started (cancelled alone, it plays a node that died:
        its heartbeat lapses, it never says goodbye)."""

    async def start(self) -> None:
        """The first heartbeat (raises `RedisError` if Redis does not answer), then one
        every ``heartbeat_seconds``."""
        await self.beat()
        self.heartbeats = asyncio.create_task(self._run(), name="cluster-heartbeat")

    async def beat(self) -> None:
        info = self._describe()
        ttl_ms = round(self.settings.ttl_seconds * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(node_key(info.node_id), json.dumps(info.public()), px=ttl_ms)
            pipe.sadd(NODES, info.node_id)
            await pipe.execute()
        for keep in self.with_beat:
            await keep()
        self.nodes = await live_nodes(self.redis)
        self.seen_at = time.monotonic()
        if self.answering_since is None:
            self.answering_since = self.seen_at
        for hook in self.on_beat:
            try:
                hook(self.nodes)
            except Exception:
                log.exception("cluster: a heartbeat hook failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await self.beat()
            except (RedisError, OSError) as error:
                self.answering_since = None
                if self.error is None:
                    log.warning("cluster: Redis does not answer, retrying: %s", error)
                self.error = f"{type(error).__name__}: {error}"
                continue
            if self.error is not None:
                log.info("cluster: Redis answers again; %d node(s) live", len(self.nodes))
                self.error = None

    async def stop(self) -> None:
        """Stop beating and leave the registry at once (the others need not wait out the
        expiry). Idempotent."""
        if self.heartbeats is not None:
            self.heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeats
            self.heartbeats = None
        with contextlib.suppress(RedisError, OSError):
            node_id = self.settings.node_id
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(node_key(node_id))
                pipe.srem(NODES, node_id)
                await pipe.execute()

    def settled(self) -> bool:
        """Redis has answered for a whole TTL: every live node has beaten since, so one
        missing from `nodes` is gone (not just slow to come back after a Redis restart)."""
        since = self.answering_since
        return since is not None and time.monotonic() - since >= self.settings.ttl_seconds

    def snapshot(self) -> dict[str, Any]:
        """``/health``'s ``cluster``: Redis's state and the nodes last seen."""
        age = None if self.seen_at is None else round(time.monotonic() - self.seen_at, 3)
        return {
            "redis": "ok" if self.error is None else f"unreachable: {self.error}",
            "seenSecondsAgo": age,
            "nodes": [node.public() for node in self.nodes],
        }

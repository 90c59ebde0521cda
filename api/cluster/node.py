"""This server as a node of a cluster: its Redis connection, its heartbeat (what it holds
and how busy it is) and the cluster it sees, for ``/health`` and ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .placement import NodeInfo
from .registry import NodeRegistry
from .settings import ClusterSettings, node_cores

RoomCounts = Callable[[], tuple[int, int]]
"""``(rooms, participants)`` this node holds now."""


class CpuSampler:
    """The process's CPU use in cores since the previous sample."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last = self._read()

    def _read(self) -> tuple[float, float]:
        times = self._process.cpu_times()
        return time.monotonic(), float(times.user + times.system)

    def sample(self) -> float:
        now = self._read()
        elapsed = now[0] - self._last[0]
        used = now[1] - self._last[1]
        self._last = now
        return used / elapsed if elapsed > 0 else 0.0


class ClusterNode:
    """The cluster as this node takes part in it; `start` joins, `stop` leaves."""

    def __init__(
        self, settings: ClusterSettings, ice_addresses: tuple[str, ...], counts: RoomCounts
    ) -> None:
        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url, decode_responses=True)
        self._ice_addresses = ice_addresses
        self._counts = counts
        self._cpu = CpuSampler()
        self.cores = node_cores()
        self.draining = False
        self.last: NodeInfo | None = None
        """What the last heartbeat said."""
        self.registry = NodeRegistry(self.redis, settings, self.describe)

    def describe(self) -> NodeInfo:
        """This node now (its CPU since the previous call): the heartbeat's content."""
        rooms, participants = self._counts()
        self.last = NodeInfo(
            node_id=self.settings.node_id,
            http_url=self.settings.http_url,
            ice_addresses=self._ice_addresses,
            cores=self.cores,
            cpu=self._cpu.sample(),
            rooms=rooms,
            participants=participants,
            region=self.settings.region,
            draining=self.draining,
        )
        return self.last

    async def start(self) -> None:
        """Register; `ClusterUnavailable` with the reason if Redis does not answer."""
        try:
            await self.registry.start()
        except (RedisError, OSError) as error:
            await self.redis.aclose()
            raise ClusterUnavailable(
                f"cluster mode: Redis at REDIS_URL does not answer: {error}"
            ) from None

    async def stop(self) -> None:
        await self.registry.stop()
        await self.redis.aclose()

    def health(self) -> dict[str, Any]:
        """``/health``'s ``node`` and ``cluster``."""
        return {
            "node": (self.last or self.describe()).public(),
            "cluster": self.registry.snapshot(),
        }


class ClusterUnavailable(Exception):
    """Cluster mode cannot start: the message says why, in one line."""

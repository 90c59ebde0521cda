"""This server as a node of a cluster: its Redis connection, its heartbeat (what it holds
and how busy it is), the cluster it sees (``/health``, ``/metrics``), and the class
broadcasts it shares with the other nodes over the bus."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..hub import SocketHub, UserAddress
from ..models import ClassRecord
from .bus import ClusterBus, Message
from .placement import NodeInfo, choose_node
from .registry import NodeRegistry
from .room_map import Placement, claim_room
from .settings import ClusterSettings, node_cores

log = logging.getLogger(__name__)

CLASS_EVENT = "class_event"
USER_EVENT = "user_event"

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
        self,
        settings: ClusterSettings,
        ice_addresses: tuple[str, ...],
        counts: RoomCounts,
        hub: SocketHub,
    ) -> None:
        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url, decode_responses=True)
        self.bus = ClusterBus(self.redis, settings.node_id)
        self._hub = hub
        self._relaying: set[asyncio.Task[None]] = set()
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
        """Register and join the bus; `ClusterUnavailable` with the reason if Redis does
        not answer."""
        try:
            await self.registry.start()
            await self.bus.start()
        except (RedisError, OSError) as error:
            await self.registry.stop()
            await self.redis.aclose()
            raise ClusterUnavailable(
                f"cluster mode: Redis at REDIS_URL does not answer: {error}"
            ) from None
        self.bus.on(CLASS_EVENT, self._class_event)
        self.bus.on(USER_EVENT, self._user_event)
        self._hub.relay = self._relay
        self._hub.user_relay = self._relay_to_user

    async def stop(self) -> None:
        self._hub.relay = None
        self._hub.user_relay = None
        for task in list(self._relaying):
            task.cancel()
        await asyncio.gather(*self._relaying, return_exceptions=True)
        await self.bus.stop()
        await self.registry.stop()
        await self.redis.aclose()

    async def place(self, class_id: str, session_id: str, *, away: bool = False) -> Placement:
        """Where the class's room for `session_id` is, placed now on the least loaded live
        node if it is nowhere live (``room_map.claim_room``; `NoNodeAvailable`); `away`:
        on another node than this one (a drain moves it)."""
        return await claim_room(
            self.redis,
            class_id,
            session_id,
            lambda nodes: choose_node(nodes, self.settings.load_limit),
            leaving=self.settings.node_id if away else None,
        )

    async def announce_draining(self) -> None:
        """Take no new rooms from now on, and say so at once (not at the next beat)."""
        self.draining = True
        try:
            await self.registry.beat()
        except (RedisError, OSError) as error:
            log.warning("cluster: the drain is not announced yet: %s", error)

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a task of the cluster's until it is done (cancelled on `stop`)."""
        self._relaying.add(task)
        task.add_done_callback(self._relaying.discard)

    # -- class broadcasts (ATTENDANCE_MARKED, TODAY_SUMMARY, DONE) on every node ------
    def _relay(self, cls: ClassRecord, event: str, data: dict[str, Any]) -> None:
        message = {
            "t": CLASS_EVENT,
            "origin": self.settings.node_id,
            "classId": cls.id,
            "members": [cls.teacher_id, *cls.student_ids],
            "event": event,
            "data": data,
        }
        self.keep(asyncio.get_running_loop().create_task(self._publish(message)))

    async def _publish(self, message: Message) -> None:
        try:
            await self.bus.broadcast(message)
        except (RedisError, OSError) as error:  # the local sockets have it: the rest wait
            log.warning("cluster: %s not relayed to the other nodes: %s", message["event"], error)

    def _class_event(self, message: Message) -> None:
        if message.get("origin") == self.settings.node_id:
            return  # delivered here when it was sent
        self._hub.deliver(
            str(message["classId"]),
            [str(member) for member in message.get("members") or []],
            str(message["event"]),
            dict(message.get("data") or {}),
        )

    # -- pushes to a user or a role (MY_ATTENDANCE_UPDATED, STUDENT_SIGNED_UP, ...) --------
    def _relay_to_user(self, address: UserAddress, event: str, data: dict[str, Any]) -> None:
        message = {
            "t": USER_EVENT,
            "origin": self.settings.node_id,
            "userId": address.user_id,
            "role": address.role,
            "event": event,
            "data": data,
        }
        self.keep(asyncio.get_running_loop().create_task(self._publish(message)))

    def _user_event(self, message: Message) -> None:
        if message.get("origin") == self.settings.node_id:
            return
        user_id, role = message.get("userId"), message.get("role")
        address = UserAddress(
            user_id=None if user_id is None else str(user_id),
            role=None if role is None else str(role),
        )
        self._hub.deliver_to(address, str(message["event"]), dict(message.get("data") or {}))

    def health(self) -> dict[str, Any]:
        """``/health``'s ``node`` and ``cluster``."""
        return {
            "node": (self.last or self.describe()).public(),
            "cluster": self.registry.snapshot(),
        }


class ClusterUnavailable(Exception):
    """Cluster mode cannot start: the message says why, in one line."""

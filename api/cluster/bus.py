"""Messages between nodes over Redis pub/sub (LiveKit's message bus): each node reads its
own inbox channel and the cluster's broadcast channel, and can ask another node and wait
for its answer.

Channels (``classroom:`` prefix): ``inbox:<nodeId>`` (to one node) and ``broadcast`` (to
every node, the sender included). A message is a JSON object with a string ``t`` (its
type); handlers are registered per type. Redis delivers the messages one connection
publishes to one channel in order, and the bus hands them to the handlers in that order,
one at a time; a handler that must not hold the others up starts its own task.

Pub/sub is fire-and-forget: a node that is down misses what is sent meanwhile. What must
survive that lives in the store (MongoDB) or in Redis keys (the registry, the room map);
the bus carries what is only meaningful now (signalling, broadcasts, requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from .registry import PREFIX

log = logging.getLogger(__name__)

BROADCAST = PREFIX + "broadcast"
RECONNECT_SECONDS = 0.5

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[None] | None]
Responder = Callable[[Message], Awaitable[Any]]


def inbox(node_id: str) -> str:
    return f"{PREFIX}inbox:{node_id}"


class NoAnswer(Exception):
    """The node asked did not answer in time (down, or cut off from Redis)."""


class ClusterBus:
    """This node's end of the bus; `start` subscribes, `stop` unsubscribes."""

    def __init__(self, redis: Redis, node_id: str) -> None:
        self.redis = redis
        self.node_id = node_id
        self._handlers: dict[str, Handler] = {}
        self._responders: dict[str, Responder] = {}
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()

    def on(self, kind: str, handler: Handler) -> None:
        """Call `handler` with every message of type `kind` (inbox or broadcast)."""
        self._handlers[kind] = handler

    def answer(self, kind: str, responder: Responder) -> None:
        """Answer `ask(.., kind, ..)` requests with what `responder` returns (JSON);
        an exception it raises is answered as the error's message."""
        self._responders[kind] = responder

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(inbox(self.node_id), BROADCAST)
        self._reader = asyncio.create_task(self._read(), name="cluster-bus")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        for task in list(self._answering):
            task.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(NoAnswer("the bus stopped"))

    async def send(self, node_id: str, message: Message) -> int:
        """To one node's inbox; how many subscribers got it (0: that node is not there)."""
        delivered: int = await self.redis.publish(inbox(node_id), json.dumps(message))
        return delivered

    async def broadcast(self, message: Message) -> None:
        """To every node, this one included."""
        await self.redis.publish(BROADCAST, json.dumps(message))

    async def ask(self, node_id: str, kind: str, body: Message, timeout: float) -> Any:
        """Send a request to `node_id` and wait for its answer (`NoAnswer` if none comes
        within `timeout`; `RuntimeError` with its message if its responder failed)."""
        request_id = f"{self.node_id}:{next(self._ids)}"
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            message = {"t": "ask", "kind": kind, "id": request_id, "from": self.node_id, **body}
            if await self.send(node_id, message) == 0:
                raise NoAnswer(f"node {node_id} is not on the bus")
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise NoAnswer(f"node {node_id} did not answer {kind} within {timeout:g} s") from None
        finally:
            self._waiting.pop(request_id, None)

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                async for raw in self._pubsub.listen():
                    await self._deliver(raw)
            except (RedisError, OSError) as error:
                log.warning("cluster bus: lost Redis, resubscribing: %s", error)
                await asyncio.sleep(RECONNECT_SECONDS)
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.subscribe(inbox(self.node_id), BROADCAST)

    async def _deliver(self, raw: dict[str, Any]) -> None:
        if raw.get("type") != "message":
            return
        try:
            message = json.loads(raw["data"])
        except (ValueError, TypeError):
            log.warning("cluster bus: a message that is not JSON, ignored")
            return
        if not isinstance(message, dict) or not isinstance(message.get("t"), str):
            log.warning("cluster bus: a message without a type, ignored")
            return
        kind = message["t"]
        try:
            if kind == "ask":  # a responder may take a while: the bus goes on meanwhile
                task = asyncio.create_task(self._respond(message))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
            elif kind == "answer":
                self._answered(message)
            elif (handler := self._handlers.get(kind)) is not None:
                result = handler(message)
                if result is not None:
                    await result
        except Exception:
            log.exception("cluster bus: handling a %r message failed", kind)

    async def _respond(self, message: Message) -> None:
        responder = self._responders.get(str(message.get("kind")))
        reply: Message = {"t": "answer", "id": message.get("id")}
        if responder is None:
            reply["error"] = f"node {self.node_id} answers no {message.get('kind')!r}"
        else:
            try:
                reply["result"] = await responder(message)
            except Exception as error:
                log.exception("cluster bus: answering %r failed", message.get("kind"))
                reply["error"] = str(error) or type(error).__name__
        with contextlib.suppress(RedisError, OSError):
            await self.send(str(message.get("from")), reply)

    def _answered(self, message: Message) -> None:
        waiting = self._waiting.get(str(message.get("id")))
        if waiting is None or waiting.done():
            return  # answered after its timeout
        if "error" in message:
            waiting.set_exception(RuntimeError(str(message["error"])))
        else:
            waiting.set_result(message.get("result"))

"""The room → node map in Redis (LiveKit's ``room_node_map``): which node holds a class's
live room. A claim is atomic (a Lua script), so two nodes starting the same class at
once end with one placement; a placement on a node that is gone is taken over by the
next claim.

Keys: ``classroom:room:<classId>``, a JSON ``{nodeId, sessionId}``; ``classroom:placed:<nodeId>``,
the classes placed on a node (a set, kept with the map in the same scripts). A room opens
on its node at the first join, so a node's heartbeat does not count a room placed a
moment ago: the chooser counts the placed ones, or classes started together would all
land on the node that was least loaded before any of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from .placement import NodeInfo
from .registry import PREFIX, live_nodes, text

_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[3])
  return ARGV[1]
end
return current
"""
"""Set the placement if it is still what the caller saw (``ARGV[2]``; "" for none), and
move the class (``ARGV[3]``) from the old node's placed set (``KEYS[3]``) to the new's."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SREM', KEYS[2], ARGV[2])
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_HOLD = """
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
  return ARGV[1]
end
return current
"""
"""Write the placement unless the class has one (a Redis that restarted empty)."""

Chooser = Callable[[Sequence[NodeInfo]], NodeInfo | None]


class NoNodeAvailable(Exception):
    """No live node takes new rooms (all draining, or none registered)."""


@dataclass(frozen=True)
class Placement:
    node_id: str
    session_id: str

    def encoded(self) -> str:
        return json.dumps({"nodeId": self.node_id, "sessionId": self.session_id}, sort_keys=True)

    @classmethod
    def decoded(cls, raw: str | bytes) -> Placement:
        data: dict[str, Any] = json.loads(raw)
        return cls(str(data["nodeId"]), str(data["sessionId"]))


def room_key(class_id: str) -> str:
    return f"{PREFIX}room:{class_id}"


def placed_key(node_id: str) -> str:
    return f"{PREFIX}placed:{node_id}"


async def with_placed_rooms(redis: Redis, nodes: Sequence[NodeInfo]) -> list[NodeInfo]:
    """`nodes`, each counting the rooms placed on it that it has not opened yet."""
    async with redis.pipeline(transaction=False) as pipe:
        for node in nodes:
            pipe.scard(placed_key(node.node_id))
        counts = await pipe.execute()
    return [
        replace(node, rooms=max(node.rooms, int(placed)))
        for node, placed in zip(nodes, counts, strict=True)
    ]


async def placement_of(redis: Redis, class_id: str) -> Placement | None:
    raw = await redis.get(room_key(class_id))
    return None if raw is None else Placement.decoded(raw)


async def claim_room(
    redis: Redis,
    class_id: str,
    session_id: str,
    choose: Chooser,
    *,
    leaving: str | None = None,
) -> Placement:
    """Where `class_id`'s room for `session_id` lives: where it already is if that node is
    live, else on the node `choose` picks from the live ones (`NoNodeAvailable` if none).
    `leaving`: a node that is moving its rooms away (draining), never kept nor chosen."""
    for _ in range(8):  # another claim won meanwhile: look again
        raw = await redis.get(room_key(class_id))
        current = None if raw is None else Placement.decoded(raw)
        live = await live_nodes(redis)
        nodes = await with_placed_rooms(redis, [n for n in live if n.node_id != leaving])
        if (
            current is not None
            and current.session_id == session_id
            and any(node.node_id == current.node_id for node in nodes)
        ):
            return current
        node = choose(nodes)
        if node is None:
            raise NoNodeAvailable("no live node takes new rooms")
        wanted = Placement(node.node_id, session_id).encoded()
        seen = "" if raw is None else text(raw)
        old = placed_key(current.node_id if current is not None else node.node_id)
        keys = (room_key(class_id), placed_key(node.node_id), old)
        winner = await redis.eval(_CLAIM, 3, *keys, wanted, seen, class_id)  # type: ignore[misc]
        placement = Placement.decoded(winner)
        if placement.session_id == session_id:
            return placement
    raise NoNodeAvailable(f"class {class_id}: the placement kept changing under the claim")


async def hold_room(redis: Redis, class_id: str, placement: Placement) -> Placement:
    """Write `placement` of a room that is open on its node unless the class is placed
    already; the placement the class has now."""
    keys = (room_key(class_id), placed_key(placement.node_id))
    held = await redis.eval(_HOLD, 2, *keys, placement.encoded(), class_id)  # type: ignore[misc]
    return Placement.decoded(held)


async def release_room(redis: Redis, class_id: str, placement: Placement) -> bool:
    """Forget `placement` (the session ended) unless the class was placed again since."""
    keys = (room_key(class_id), placed_key(placement.node_id))
    removed = await redis.eval(_RELEASE, 2, *keys, placement.encoded(), class_id)  # type: ignore[misc]
    return bool(removed)

"""Which node a new room goes to: LiveKit's ``sysload`` selector, as pure logic.

LiveKit (``pkg/routing/selector/sysload.go``) keeps the available nodes whose system load
per core is under ``sysload_limit`` (0.7 in its sample configuration), or all of them when
none is, and takes the first by its ``sort_by``; here that order is the least loaded.
Here the load is the node's own CPU use in cores over its cores (`NodeInfo.load`), which
a heartbeat refreshes; a draining node takes no new room at all. Loads within
`LOAD_STEP` of each other count as equal (an idle node's own noise must not decide), and
ties go to the node with fewer participants, then fewer rooms, then the node id (so two
nodes deciding from the same registry decide alike).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_LOAD_LIMIT = 0.7
"""LiveKit's ``sysload_limit`` in its sample configuration."""
LOAD_STEP = 0.05
"""Loads are compared in steps of 5 % of a node."""


@dataclass(frozen=True)
class NodeInfo:
    """One node as its heartbeat describes it."""

    node_id: str
    http_url: str
    ice_addresses: tuple[str, ...]
    cores: int
    cpu: float
    """CPU in use, in cores (the process's, over the last heartbeat interval)."""
    rooms: int
    participants: int
    region: str | None = None
    draining: bool = False

    @property
    def load(self) -> float:
        """CPU in use per core (0-1, and more on an oversubscribed machine)."""
        return self.cpu / max(1, self.cores)

    def public(self) -> dict[str, Any]:
        return {
            "nodeId": self.node_id,
            "httpUrl": self.http_url,
            "iceAddresses": list(self.ice_addresses),
            "region": self.region,
            "cores": self.cores,
            "cpu": round(self.cpu, 3),
            "load": round(self.load, 3),
            "rooms": self.rooms,
            "participants": self.participants,
            "draining": self.draining,
        }

    @classmethod
    def from_public(cls, data: dict[str, Any]) -> NodeInfo:
        """A heartbeat as stored in Redis; `ValueError` if it is not one."""
        try:
            return cls(
                node_id=str(data["nodeId"]),
                http_url=str(data["httpUrl"]),
                ice_addresses=tuple(str(a) for a in data["iceAddresses"]),
                cores=int(data["cores"]),
                cpu=float(data["cpu"]),
                rooms=int(data["rooms"]),
                participants=int(data["participants"]),
                region=None if data.get("region") is None else str(data["region"]),
                draining=bool(data.get("draining", False)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a node heartbeat: {error}") from None


def choose_node(
    nodes: Iterable[NodeInfo], load_limit: float = DEFAULT_LOAD_LIMIT
) -> NodeInfo | None:
    """The node for a new room, or None when no node takes rooms (all draining, none)."""
    open_nodes = [node for node in nodes if not node.draining]
    if not open_nodes:
        return None
    under = [node for node in open_nodes if node.load < load_limit]
    candidates = under or open_nodes
    return min(
        candidates,
        key=lambda n: (round(n.load / LOAD_STEP), n.participants, n.rooms, n.node_id),
    )

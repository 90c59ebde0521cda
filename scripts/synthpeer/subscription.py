"""What a synthetic participant asks the server to forward (``SUBSCRIPTION``), and what
the server says it gets (``LAYERS``).

`PageSubscription` asks what the classroom page asks: the teacher's camera in layer high
and their screen, up to `tiles` other students' cameras in layer low (the first to arrive),
every other camera off, every microphone on. `LayersRecord` keeps the ``LAYERS`` events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TILES = 8
"""Student tiles the page shows besides the teacher's."""

Choice = dict[str, str]
"""One user's entry: ``{camera?, screen?, microphone?}``."""


class PageSubscription:
    """The page's ``SUBSCRIPTION`` for member `me`, kept in step with the roster.

    Feed it the roster (`seed` from ``ROOM_JOINED``, `joined`, `left`); `changes()` returns
    the partial update to send (users whose entry differs from what was last sent), and
    counts it as sent.
    """

    def __init__(self, me: str, tiles: int = DEFAULT_TILES) -> None:
        self.me = me
        self.tiles = tiles
        self._roles: dict[str, str] = {}
        """user id -> role, in arrival order (who gets a tile)."""
        self._sent: dict[str, Choice] = {}

    def seed(self, participants: list[dict[str, Any]]) -> None:
        """``ROOM_JOINED.participants``: everyone already in the room."""
        for entry in participants:
            self.joined(str(entry.get("userId")), str(entry.get("role", "student")))

    def joined(self, user_id: str, role: str) -> None:
        if user_id != self.me and user_id not in self._roles:
            self._roles[user_id] = role

    def left(self, user_id: str) -> None:
        self._roles.pop(user_id, None)
        # Sent again if the user comes back: the server forgets who left.
        self._sent.pop(user_id, None)

    def wanted(self) -> dict[str, Choice]:
        """Every present user's entry, as the page would ask for it now."""
        wanted: dict[str, Choice] = {}
        students = 0
        for user_id, role in self._roles.items():
            if role == "teacher":
                wanted[user_id] = {"camera": "high", "screen": "on", "microphone": "on"}
                continue
            tile = students < self.tiles
            students += 1
            wanted[user_id] = {"camera": "low" if tile else "off", "microphone": "on"}
        return wanted

    def changes(self) -> dict[str, Choice]:
        """The partial ``SUBSCRIPTION`` that brings the server to `wanted` (empty: none)."""
        update = {u: c for u, c in self.wanted().items() if self._sent.get(u) != c}
        self._sent.update(update)
        return update

    def reset(self) -> None:
        """A new membership (rejoin): the server starts from the defaults again."""
        self._roles.clear()
        self._sent.clear()


@dataclass
class LayersRecord:
    """The ``LAYERS`` events one subscriber received, and what they add up to."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    """(monotonic arrival time, event data), in order."""
    current: dict[str, dict[str, str]] = field(default_factory=dict)
    """user id -> the latest ``{camera?, screen?, microphone?, reason}`` for them."""

    def on_event(self, data: dict[str, Any]) -> None:
        self.events.append((time.monotonic(), data))
        for user_id, entry in data.items():
            if isinstance(entry, dict):
                self.current.setdefault(str(user_id), {}).update(
                    {str(k): str(v) for k, v in entry.items()}
                )

    def reduced(self) -> dict[str, dict[str, str]]:
        """Users whose latest entry says ``reason: "bandwidth"`` (the page's badge)."""
        return {u: e for u, e in self.current.items() if e.get("reason") == "bandwidth"}

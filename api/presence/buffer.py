"""Presence writes waiting for the store: in order, bounded, counters coalesced. Pure
logic, no I/O (the loop that writes them is `api.presence.writer`).

What a full buffer gives up, in this order (docs/attendance.md, "When the store is
down"):

1. Nothing, while it has room. A newer counters snapshot of a (session, user) replaces
   the one waiting, full or not (counters are whole-document replaces of running totals:
   the store ends up the same).
2. A reconnect within the grace window: a user's ``disconnected`` followed by their
   ``connected`` at most `grace` later (the ``connected`` being pushed included).
   `presence_intervals` merges such a gap anyway, so removing the pair changes no
   interval, no status and no report (``merged``, 2 per pair).
3. The oldest camera or talking mark (`api.models.MEDIA_MARK_KINDS`), with the mark that
   ends it if that waits too: a span disappears from the timeline, the seconds stay
   exact in the counters (``dropped``, 1 or 2).
4. The shortest gap: the same pair as in 2 with a longer gap. The record then counts that
   gap as presence; the first join and the last leave stay exact (``dropped``, 2 per pair).
5. The oldest counters snapshot waiting: that user's stored totals lag until their next
   snapshot (every ``PRESENCE_FLUSH_SECONDS`` while connected) (``dropped``).
6. The write being pushed (``dropped``). Only events are left then, at most two per user
   (a pair is all it takes for step 2 or 4), so it needs more than half the bound in users
   of one room: unreachable at the default bound, whose half is above
   ``ROOM_MAX_PARTICIPANTS``' range.

The first write is never merged or dropped: it is the one being written.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from ..models import ActivityEvent, PresenceCounters, PresenceEvent
from ..store.rules import stored_moment

PresenceWrite = PresenceEvent | PresenceCounters | ActivityEvent
"""Presence itself, and the camera and talking marks the tracker takes from it."""
UserKey = tuple[str, str]
"""(session id, user id)."""


@dataclass
class BufferStats:
    """What presence buffers gave up since the server started (shared by every room)."""

    merged: int = 0
    """Events removed in pairs without changing any interval (step 2)."""
    dropped: int = 0
    """Events or counters removed that change the record (steps 3 to 5)."""
    failed: int = 0
    """Writes the store refused for a reason other than being unavailable (logged)."""


@dataclass
class _Entry:
    write: PresenceWrite
    queued_at: float


@dataclass
class PresenceBuffer:
    """Presence writes in the order they happened, at most `limit` of them."""

    limit: int
    grace: timedelta
    stats: BufferStats = field(default_factory=BufferStats)
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[int, _Entry] = field(default_factory=OrderedDict, init=False)
    _counters_at: dict[UserKey, int] = field(default_factory=dict, init=False)
    _next_seq: int = field(default=0, init=False)
    head_uncertain: bool = field(default=False, init=False)
    """The first write failed in a way that may have stored it (e.g. a lost reply):
    check the store before writing it again, so it is not stored twice."""

    def __len__(self) -> int:
        return len(self._entries)

    def writes(self) -> list[PresenceWrite]:
        """What is waiting, first to be written first."""
        return [entry.write for entry in self._entries.values()]

    def head(self) -> PresenceWrite | None:
        """The next write, or None when nothing waits."""
        for entry in self._entries.values():
            return entry.write
        return None

    def oldest_age(self) -> float | None:
        """Seconds the next write has waited, None when nothing waits."""
        for entry in self._entries.values():
            return self.clock() - entry.queued_at
        return None

    def mark(self) -> int:
        """A position after everything pushed so far (for `written_through`)."""
        return self._next_seq

    def written_through(self, mark: int) -> bool:
        """Whether nothing pushed before `mark` is still waiting (a counters snapshot
        replaced by a newer one counts as written: the newer one carries it)."""
        head = self._head_seq()
        return head is None or head >= mark

    def push(self, write: PresenceWrite) -> None:
        """Queue `write` after everything waiting (see the module for a full buffer)."""
        key = (write.session_id, write.user_id)
        if isinstance(write, PresenceCounters):
            waiting = self._counters_at.get(key)
            if waiting is not None and waiting != self._head_seq():
                del self._entries[waiting]
                self._append(write, key)
                return
        if len(self._entries) >= self.limit:
            if self._make_room(write):
                return
            if len(self._entries) >= self.limit:
                self.stats.dropped += 1
                return
        self._append(write, key)

    def written(self) -> None:
        """The first write is stored (or found stored): forget it."""
        seq = self._head_seq()
        if seq is None:
            return
        self._remove(seq)
        self.head_uncertain = False

    def _append(self, write: PresenceWrite, key: UserKey) -> None:
        seq = self._next_seq
        self._next_seq += 1
        self._entries[seq] = _Entry(write, self.clock())
        if isinstance(write, PresenceCounters):
            self._counters_at[key] = seq

    def _remove(self, seq: int) -> None:
        write = self._entries.pop(seq).write
        key = (write.session_id, write.user_id)
        if self._counters_at.get(key) == seq:
            del self._counters_at[key]

    def _head_seq(self) -> int | None:
        return next(iter(self._entries), None)

    def _make_room(self, incoming: PresenceWrite) -> bool:
        """Steps 2 to 5 for a full buffer; True if `incoming` itself was taken out (it
        closed a pair with a waiting ``disconnected``)."""
        head = self._head_seq()
        last_event: dict[UserKey, tuple[int, PresenceEvent]] = {}
        best: tuple[timedelta, int, int | None] | None = None

        def consider(
            before: tuple[int, PresenceEvent] | None, seq: int | None, event: PresenceEvent
        ) -> None:
            nonlocal best
            if before is None or before[0] == head:
                return
            if before[1].kind == "disconnected" and event.kind == "connected":
                gap = stored_moment(event.at) - stored_moment(before[1].at)
                if best is None or gap < best[0]:
                    best = (gap, before[0], seq)

        for seq, entry in self._entries.items():
            event = entry.write
            if isinstance(event, PresenceEvent):
                key = (event.session_id, event.user_id)
                consider(last_event.get(key), seq, event)
                last_event[key] = (seq, event)
        if isinstance(incoming, PresenceEvent):
            consider(last_event.get((incoming.session_id, incoming.user_id)), None, incoming)
        if best is not None and best[0] <= self.grace:
            _, left, arrived = best
            self._remove(left)
            if arrived is not None:
                self._remove(arrived)
            self.stats.merged += 2
            return arrived is None
        if self._drop_oldest_mark(head):
            return False
        if best is not None:
            gap, left, arrived = best
            self._remove(left)
            if arrived is not None:
                self._remove(arrived)
            if gap <= self.grace:
                self.stats.merged += 2
            else:
                self.stats.dropped += 2
            return arrived is None
        counters = [seq for seq in self._counters_at.values() if seq != head]
        if counters:
            self._remove(min(counters))
            self.stats.dropped += 1
        return False

    def _drop_oldest_mark(self, head: int | None) -> bool:
        """Step 3: the oldest waiting mark and, when it starts a span, the one ending it."""
        oldest: tuple[int, ActivityEvent] | None = None
        for seq, entry in self._entries.items():
            write = entry.write
            if seq == head or not isinstance(write, ActivityEvent):
                continue
            if oldest is None:
                oldest = (seq, write)
                continue
            first = oldest[1]
            if (write.user_id, write.kind) == (first.user_id, first.kind):
                if first.data.get("on") is True:
                    self._remove(seq)
                    self.stats.dropped += 1
                break
        if oldest is None:
            return False
        self._remove(oldest[0])
        self.stats.dropped += 1
        return True


def already_stored(last_stored: PresenceEvent | None, event: PresenceEvent) -> bool:
    """Whether `event` is the user's last stored event, i.e. an earlier attempt stored it.

    Exact because an event carries its own moment (to the millisecond, as stored) and a
    user's events are appended in order: an earlier attempt that stored `event` made it
    the last one, and any other event of theirs differs from it in moment or kind.
    """
    return last_stored is not None and last_stored == replace(event, at=stored_moment(event.at))

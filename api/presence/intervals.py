"""Presence intervals from connect/disconnect events: pure logic, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..models import PresenceEvent


@dataclass(frozen=True)
class Interval:
    """A span of continuous presence, ``start`` inclusive, ``end`` exclusive."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


def presence_intervals(
    events: Iterable[PresenceEvent],
    *,
    grace: timedelta,
    open_until: datetime,
) -> list[Interval]:
    """Intervals of one participant from their events, in order.

    A reconnect within ``grace`` of the disconnect continues the interval; a longer gap
    starts a new one. A connection still open at the end of the events is closed at
    ``open_until`` (the session's end, now, or the last heartbeat after a crash).
    Repeated ``connected`` events (one per peer connection) count once.
    """
    raw: list[Interval] = []
    opened: datetime | None = None
    for event in events:
        if event.kind == "connected":
            if opened is None:
                opened = event.at
        elif opened is not None:
            raw.append(Interval(opened, max(opened, event.at)))
            opened = None
    if opened is not None:
        raw.append(Interval(opened, max(opened, open_until)))
    merged: list[Interval] = []
    for interval in raw:
        if merged and interval.start - merged[-1].end <= grace:
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, interval.end))
        else:
            merged.append(interval)
    return merged


def clip(intervals: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of ``intervals`` inside ``[start, end)``."""
    clipped = []
    for interval in intervals:
        lo, hi = max(interval.start, start), min(interval.end, end)
        if hi > lo:
            clipped.append(Interval(lo, hi))
    return clipped


def total_seconds(intervals: Iterable[Interval]) -> float:
    return sum(interval.seconds for interval in intervals)

"""Running media counters, per media kind, cheap enough to read every second.

`Router.counter_totals()` returns, per kind, everything the router's producers and
consumers ever counted: what closed ones counted (added once, when each closes, with its
final values) plus the live ones' current values, summed with plain integer adds
(`Producer.add_counters`, `Consumer.add_counters`) instead of building a `ProducerStats`
or `ConsumerStats` per entity. The totals never go down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from sfu.ids import MediaKind

KINDS: tuple[MediaKind, ...] = ("audio", "video")


@dataclass(slots=True)
class ProducerCounters:
    """Sums of `ProducerStats` counters (same names, same meaning)."""

    packets: int = 0
    bytes: int = 0
    frames: int = 0
    keyframes: int = 0
    late_packets: int = 0
    skipped_frames: int = 0
    keyframe_requests: int = 0
    plis_sent: int = 0
    nacks_sent: int = 0
    frames_withheld: int = 0

    def add(self, other: ProducerCounters) -> None:
        for name in PRODUCER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class ConsumerCounters:
    """Sums of `ConsumerStats` counters (same names; `keyframe_requests` are the PLI/FIR
    received from subscribers)."""

    frames_forwarded: int = 0
    frames_dropped: int = 0
    keyframe_requests: int = 0
    packets_forwarded: int = 0
    bytes_forwarded: int = 0
    nacks_received: int = 0
    retransmissions: int = 0
    layer_switches: int = 0
    frames_thinned: int = 0

    def add(self, other: ConsumerCounters) -> None:
        for name in CONSUMER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


PRODUCER_FIELDS = tuple(f.name for f in fields(ProducerCounters))
CONSUMER_FIELDS = tuple(f.name for f in fields(ConsumerCounters))


@dataclass(slots=True)
class MediaCounters:
    """What the producers and the consumers of one media kind counted."""

    producers: ProducerCounters = field(default_factory=ProducerCounters)
    consumers: ConsumerCounters = field(default_factory=ConsumerCounters)

    def add(self, other: MediaCounters) -> None:
        self.producers.add(other.producers)
        self.consumers.add(other.consumers)

    def copy(self) -> MediaCounters:
        counters = MediaCounters()
        counters.add(self)
        return counters


CounterTotals = dict[MediaKind, MediaCounters]
"""`MediaCounters` of both kinds (``"audio"`` and ``"video"`` are always present)."""


def new_totals() -> CounterTotals:
    """All-zero totals of both kinds."""
    return {kind: MediaCounters() for kind in KINDS}


def add_totals(into: CounterTotals, other: CounterTotals) -> None:
    """Add `other` to `into`, kind by kind."""
    for kind, counters in other.items():
        into[kind].add(counters)

"""Media-plane metrics read at scrape time from each room's `Router` (no hooks in `sfu`).

Gauges count the live rooms, participants, producers and consumers, and gauge histograms
show how subscribers receive the forwarded streams (round trip time and loss from their
latest receiver reports). Counters come from
`Router.counter_totals()`: per media kind, what the router's closed producers and
consumers counted (added once, at their close) plus the live ones' current counts, summed
with integer adds (no `Router.stats()` snapshot, no per-entity samples).
`CounterLedger` sums those over routers that come and go, so that the Prometheus counters
never go down.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sfu import CounterTotals, MediaKind, Router, refused_packet_totals
from sfu.counters import KINDS, add_totals, new_totals

RoomSource = Callable[[], Iterable[Router]]
"""The routers of the rooms open right now."""

DEPARTED_GRACE = 60.0
"""Seconds a router that left the room source is still read while it closes."""

PRODUCER_COUNTERS: dict[str, tuple[str, str]] = {
    # metric name (without _total): (help text, field of `sfu.ProducerCounters`)
    "classroom_received_packets": (
        "RTP packets received from publishers (after NACK/RTX repair)",
        "packets",
    ),
    "classroom_received_bytes": (
        "Media payload bytes of frames received from publishers",
        "bytes",
    ),
    "classroom_received_frames": ("Frames received from publishers", "frames"),
    "classroom_received_keyframes": ("Keyframes received from publishers", "keyframes"),
    "classroom_late_packets": (
        "Packets that arrived after their frame was released",
        "late_packets",
    ),
    "classroom_skipped_frames": (
        "Incomplete frames skipped by the forwarder",
        "skipped_frames",
    ),
    "classroom_keyframe_requests": (
        "Keyframe requests for publishers' streams (subscriber PLI/FIR, new consumers, loss)",
        "keyframe_requests",
    ),
    "classroom_plis_sent": ("PLIs sent upstream to publishers", "plis_sent"),
    "classroom_nacks_sent": (
        "Sequence numbers NACKed upstream to publishers (repeats count again)",
        "nacks_sent",
    ),
    "classroom_withheld_frames": (
        "Frames forwarded to nobody: the publisher is muted, or the audio is digital silence",
        "frames_withheld",
    ),
}
CONSUMER_COUNTERS: dict[str, tuple[str, str]] = {
    # metric name (without _total): (help text, field of `sfu.ConsumerCounters`)
    "classroom_forwarded_frames": ("Frames forwarded to subscribers", "frames_forwarded"),
    "classroom_dropped_frames": (
        "Frames not forwarded to a subscriber (waiting for a keyframe, or it fell behind)",
        "frames_dropped",
    ),
    "classroom_subscriber_plis": (
        "PLI/FIR received from subscribers",
        "keyframe_requests",
    ),
    "classroom_forwarded_packets": (
        "RTP packets forwarded to subscribers (first transmissions)",
        "packets_forwarded",
    ),
    "classroom_forwarded_bytes": (
        "RTP payload bytes forwarded to subscribers (first transmissions)",
        "bytes_forwarded",
    ),
    "classroom_nacks_received": (
        "Sequence numbers NACKed by subscribers (repeats count again)",
        "nacks_received",
    ),
    "classroom_retransmissions": (
        "Packets re-sent to subscribers answering their NACKs",
        "retransmissions",
    ),
    "classroom_layer_switches": (
        "Times a subscriber's stream moved to another layer of its source (at a keyframe)",
        "layer_switches",
    ),
    "classroom_thinned_frames": (
        "Frames of a temporal layer above what a subscriber's downlink takes, not forwarded",
        "frames_thinned",
    ),
}


class CounterLedger:
    """Monotonic per-kind totals of the media counters of routers that come and go.

    Every router listed at a scrape is watched (a reference is kept) and read at every
    scrape. Once it is no longer listed (its room closed), it is still read at each scrape
    until it is closed and holds no producer (and so no consumer): its totals are then
    final, exact up to its close, and are added once to the retired totals before the
    router is let go. A router still open `grace` seconds after it left the list is
    retired with what it had counted at that scrape.
    """

    def __init__(
        self, grace: float = DEPARTED_GRACE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._grace = grace
        self._clock = clock
        self._retired = new_totals()
        self._watched: dict[Router, float | None] = {}
        """Routers read at every scrape -> when they left the list (`None`: listed)."""

    @property
    def watched(self) -> int:
        """Routers still read at every scrape (listed, or closing since they left)."""
        return len(self._watched)

    def update(self, routers: Iterable[Router]) -> CounterTotals:
        """The routers listed now -> totals of every router ever listed, per kind."""
        now = self._clock()
        listed = set(routers)
        for router in listed:
            self._watched[router] = None
        totals = new_totals()
        add_totals(totals, self._retired)
        for router, left in list(self._watched.items()):
            counts = router.counter_totals()
            add_totals(totals, counts)
            if router in listed:
                continue
            if left is None:
                left = self._watched[router] = now
            if (router.closed and not router.producers) or now - left >= self._grace:
                add_totals(self._retired, counts)
                del self._watched[router]
        return totals


class MediaCollector(Collector):
    """Rooms, participants, producers, consumers, WebSockets and the media counters."""

    def __init__(self, registry: CollectorRegistry, ledger: CounterLedger | None = None) -> None:
        self._rooms: RoomSource | None = None
        self._websockets: Callable[[], int] = lambda: 0
        self._ledger = ledger or CounterLedger()
        registry.register(self)

    def bind(self, rooms: RoomSource, websockets: Callable[[], int]) -> None:
        self._rooms = rooms
        self._websockets = websockets

    def collect(self) -> Iterator[Metric]:
        if self._rooms is None:
            return
        routers = list(self._rooms())
        yield from _gauges(routers, self._websockets())
        totals = self._ledger.update(routers)
        for name, (documentation, field) in PRODUCER_COUNTERS.items():
            family = CounterMetricFamily(name, documentation, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], getattr(totals[kind].producers, field))
            yield family
        for name, (documentation, field) in CONSUMER_COUNTERS.items():
            family = CounterMetricFamily(name, documentation, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], getattr(totals[kind].consumers, field))
            yield family
        family = CounterMetricFamily(
            "classroom_refused_packets",
            "Packets from participants dropped unread: over a track's cap, not negotiated, "
            "or a flood beyond a connection's budget",
            labels=["reason"],
        )
        for reason, count in refused_packet_totals().items():
            family.add_metric([reason], count)
        yield family


RTT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds: upper bounds of `classroom_subscriber_rtt_seconds`."""
LOSS_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.25)
"""Shares of packets: upper bounds of `classroom_subscriber_loss_ratio`."""


class _Distribution:
    """Values per media kind, counted into fixed buckets for a gauge histogram."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = {kind: [0] * (len(bounds) + 1) for kind in KINDS}
        self.sums = dict.fromkeys(KINDS, 0.0)

    def add(self, kind: MediaKind, value: float) -> None:
        self.counts[kind][bisect_left(self.bounds, value)] += 1  # the +Inf slot past the end
        self.sums[kind] += value

    def family(self, name: str, documentation: str) -> GaugeHistogramMetricFamily:
        family = GaugeHistogramMetricFamily(name, documentation, labels=["kind"])
        for kind in KINDS:
            cumulative = 0
            buckets = []
            for bound, count in zip(
                [*map(str, self.bounds), "+Inf"], self.counts[kind], strict=True
            ):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            family.add_metric([kind], buckets, self.sums[kind])
        return family


def _gauges(routers: list[Router], websockets: int) -> Iterator[Metric]:
    participants = connected = 0
    producers: dict[MediaKind, int] = dict.fromkeys(KINDS, 0)
    active: dict[MediaKind, int] = dict.fromkeys(KINDS, 0)
    pending: dict[MediaKind, int] = dict.fromkeys(KINDS, 0)
    rtt = _Distribution(RTT_BUCKETS)
    loss = _Distribution(LOSS_BUCKETS)
    for router in routers:
        for producer in router.producers.values():
            producers[producer.kind] += 1
        for participant in router.participants.values():
            participants += 1
            connected += participant.connected
            for consumer in participant.consumers.values():
                if not consumer.active:
                    pending[consumer.kind] += 1
                    continue
                active[consumer.kind] += 1
                link = consumer.link()
                if link.round_trip_time is not None:
                    rtt.add(consumer.kind, link.round_trip_time)
                if link.fraction_lost is not None:
                    loss.add(consumer.kind, link.fraction_lost)
    yield GaugeMetricFamily("classroom_rooms", "Rooms with live media", value=len(routers))
    family = GaugeMetricFamily(
        "classroom_participants", "Participants in rooms, by media connection", labels=["media"]
    )
    family.add_metric(["connected"], connected)
    family.add_metric(["not_connected"], participants - connected)
    yield family
    family = GaugeMetricFamily("classroom_producers", "Published tracks", labels=["kind"])
    for kind in KINDS:
        family.add_metric([kind], producers[kind])
    yield family
    family = GaugeMetricFamily(
        "classroom_consumers", "Forwarded tracks (one per subscriber)", labels=["kind", "state"]
    )
    for kind in KINDS:
        family.add_metric([kind, "pending"], pending[kind])
        family.add_metric([kind, "active"], active[kind])
    yield family
    yield rtt.family(
        "classroom_subscriber_rtt_seconds",
        "Forwarded streams by round trip time to their subscriber (latest receiver report)",
    )
    yield loss.family(
        "classroom_subscriber_loss_ratio",
        "Forwarded streams by the share of packets their subscriber last reported lost",
    )
    yield GaugeMetricFamily(
        "classroom_websocket_connections", "Open class WebSockets", value=websockets
    )

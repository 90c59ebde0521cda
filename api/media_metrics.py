"""Media-plane metrics read at scrape time from ``Router.stats()`` (no hooks in `sfu`).

Producers and consumers keep their own counters and disappear when their participant
leaves. `CounterLedger` turns those into Prometheus counters that never go down: a
closed entity's last scraped value stays in the total (what it counted between that
scrape and its close is not seen).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sfu import ConsumerStats, ProducerStats, Router, RouterStats

RoomSource = Callable[[], Iterable[Router]]
"""The routers of the rooms open right now."""

KINDS = ("audio", "video")

Series = tuple[str, str]
"""(counter name, media kind)."""

PRODUCER_COUNTERS: dict[str, tuple[str, Callable[[ProducerStats], int]]] = {
    "classroom_received_packets": (
        "RTP packets received from publishers (after NACK/RTX repair)",
        lambda p: p.packets,
    ),
    "classroom_received_bytes": (
        "Media payload bytes of frames received from publishers",
        lambda p: p.bytes,
    ),
    "classroom_received_frames": ("Frames received from publishers", lambda p: p.frames),
    "classroom_received_keyframes": ("Keyframes received from publishers", lambda p: p.keyframes),
    "classroom_late_packets": (
        "Packets that arrived after their frame was released",
        lambda p: p.late_packets,
    ),
    "classroom_skipped_frames": (
        "Incomplete frames skipped by the forwarder",
        lambda p: p.skipped_frames,
    ),
    "classroom_keyframe_requests": (
        "Keyframe requests for publishers' streams (subscriber PLI/FIR, new consumers, loss)",
        lambda p: p.keyframe_requests,
    ),
    "classroom_plis_sent": ("PLIs sent upstream to publishers", lambda p: p.plis_sent),
    "classroom_nacks_sent": (
        "Sequence numbers NACKed upstream to publishers (repeats count again)",
        lambda p: p.nacks_sent,
    ),
}
CONSUMER_COUNTERS: dict[str, tuple[str, Callable[[ConsumerStats], int]]] = {
    "classroom_forwarded_frames": ("Frames forwarded to subscribers", lambda c: c.frames_forwarded),
    "classroom_dropped_frames": (
        "Frames not forwarded to a subscriber (waiting for a keyframe, or it fell behind)",
        lambda c: c.frames_dropped,
    ),
    "classroom_subscriber_plis": (
        "PLI/FIR received from subscribers",
        lambda c: c.keyframe_requests,
    ),
    "classroom_forwarded_packets": (
        "RTP packets forwarded to subscribers (first transmissions)",
        lambda c: c.packets_forwarded,
    ),
    "classroom_forwarded_bytes": (
        "RTP payload bytes forwarded to subscribers (first transmissions)",
        lambda c: c.bytes_forwarded,
    ),
    "classroom_nacks_received": (
        "Sequence numbers NACKed by subscribers (repeats count again)",
        lambda c: c.nacks_received,
    ),
    "classroom_retransmissions": (
        "Packets re-sent to subscribers answering their NACKs",
        lambda c: c.retransmissions,
    ),
}


class CounterLedger:
    """Monotonic totals of counters held by entities that come and go."""

    def __init__(self) -> None:
        self._last: dict[tuple[Series, str], int] = {}
        self._retired: dict[Series, int] = defaultdict(int)

    def update(self, samples: Iterable[tuple[Series, str, int]]) -> dict[Series, int]:
        """``(series, entity id, current value)`` of every live entity -> totals."""
        seen = {(series, entity): value for series, entity, value in samples}
        for key, value in self._last.items():
            if key not in seen:
                self._retired[key[0]] += value
        self._last = seen
        totals = defaultdict(int, self._retired)
        for (series, _), value in seen.items():
            totals[series] += value
        return totals


class MediaCollector(Collector):
    """Rooms, participants, producers, consumers, WebSockets and the media counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._rooms: RoomSource | None = None
        self._websockets: Callable[[], int] = lambda: 0
        self._ledger = CounterLedger()
        registry.register(self)

    def bind(self, rooms: RoomSource, websockets: Callable[[], int]) -> None:
        self._rooms = rooms
        self._websockets = websockets

    def collect(self) -> Iterator[Metric]:
        if self._rooms is None:
            return
        stats = [router.stats() for router in self._rooms()]
        yield from _gauges(stats, self._websockets())
        totals = self._ledger.update(_counter_samples(stats))
        for name, (documentation, _) in (PRODUCER_COUNTERS | CONSUMER_COUNTERS).items():
            family = CounterMetricFamily(name, documentation, labels=["kind"])
            for kind in KINDS:
                family.add_metric([kind], totals.get((name, kind), 0))
            yield family


def _gauges(stats: list[RouterStats], websockets: int) -> Iterator[Metric]:
    participants = [p for room in stats for p in room.participants]
    yield GaugeMetricFamily("classroom_rooms", "Rooms with live media", value=len(stats))
    family = GaugeMetricFamily(
        "classroom_participants", "Participants in rooms, by media connection", labels=["media"]
    )
    connected = sum(p.connected for p in participants)
    family.add_metric(["connected"], connected)
    family.add_metric(["not_connected"], len(participants) - connected)
    yield family
    producers = GaugeMetricFamily("classroom_producers", "Published tracks", labels=["kind"])
    for kind in KINDS:
        producers.add_metric(
            [kind], sum(pr.kind == kind for p in participants for pr in p.producers)
        )
    yield producers
    consumers = GaugeMetricFamily(
        "classroom_consumers", "Forwarded tracks (one per subscriber)", labels=["kind", "state"]
    )
    for kind in KINDS:
        for state in ("pending", "active"):
            consumers.add_metric(
                [kind, state],
                sum(c.kind == kind and c.state == state for p in participants for c in p.consumers),
            )
    yield consumers
    yield GaugeMetricFamily(
        "classroom_websocket_connections", "Open class WebSockets", value=websockets
    )


def _counter_samples(stats: list[RouterStats]) -> Iterator[tuple[Series, str, int]]:
    for room in stats:
        for participant in room.participants:
            for producer in participant.producers:
                entity = f"{room.router_id}/p/{producer.producer_id}"
                for name, (_, read) in PRODUCER_COUNTERS.items():
                    yield (name, producer.kind), entity, read(producer)
            for consumer in participant.consumers:
                entity = f"{room.router_id}/c/{consumer.consumer_id}"
                for name, (_, count) in CONSUMER_COUNTERS.items():
                    yield (name, consumer.kind), entity, count(consumer)

"""Cost of the media part of a ``/metrics`` scrape, in-process, with real `sfu` rooms.

Builds rooms with the media tests' harness (`scripts.support.loopback.Room`: a real `Router`,
real aiortc peers on loopback) and times, per scrape and per consumer:

- ``before``: the scrape as it was before `Router.counter_totals()`, re-created here
  (`SnapshotScrape`: a `Router.stats()` snapshot per room, one sample per counter and
  producer or consumer, totals kept per entity);
- ``collect``: `MediaCollector.collect`, what a scrape now runs on the event loop for the
  media gauges and counters;
- ``render``: the whole registry rendered as Prometheus text (`generate_latest`);
- ``counter_totals`` and ``stats``: `Router.counter_totals()` and `Router.stats()` alone.

Rooms:

- ``flowing``: 1 publisher + N subscribers (``--subscribers``, default 20) with media
  flowing: 2N consumers;
- ``class``: P participants (``--class-size``, default 23) who all publish audio and
  video and answer their subscribe offers; their publish answers are not applied, so no
  media flows, but every producer exists and every consumer is attached to its m-section
  (the counters cost the same whether they move or not): P x (P - 1) x 2 consumers,
  1012 for 23 as in the load test's class.

    .venv/bin/python -m scripts.bench_metrics [--subscribers 20] [--class-size 23]

Prints the timings of each room; they are medians over ``--scrapes`` runs (no media
forwarding happens while a timed scrape runs: it is synchronous on the event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest

from api.media_metrics import CONSUMER_COUNTERS, PRODUCER_COUNTERS, MediaCollector
from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack
from sfu import Router


class SnapshotScrape:
    """The media part of a scrape before `Router.counter_totals()`, for comparison."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], int] = {}
        self._retired: dict[tuple[str, str], int] = defaultdict(int)

    def __call__(self, routers: list[Router]) -> dict[tuple[str, str], int]:
        stats = [router.stats() for router in routers]
        participants = [p for room in stats for p in room.participants]
        sum(p.connected for p in participants)
        for kind in ("audio", "video"):
            sum(pr.kind == kind for p in participants for pr in p.producers)
            for state in ("pending", "active"):
                sum(c.kind == kind and c.state == state for p in participants for c in p.consumers)
        seen: dict[tuple[str, str, str], int] = {}
        for room in stats:
            for participant in room.participants:
                for producer in participant.producers:
                    entity = f"{room.router_id}/p/{producer.producer_id}"
                    for name, (_, field) in PRODUCER_COUNTERS.items():
                        seen[name, producer.kind, entity] = getattr(producer, field)
                for consumer in participant.consumers:
                    entity = f"{room.router_id}/c/{consumer.consumer_id}"
                    for name, (_, field) in CONSUMER_COUNTERS.items():
                        seen[name, consumer.kind, entity] = getattr(consumer, field)
        for key, value in self._last.items():
            if key not in seen:
                self._retired[key[:2]] += value
        self._last = seen
        totals = defaultdict(int, self._retired)
        for (name, kind, _), value in seen.items():
            totals[name, kind] += value
        return totals


def _consumers(room: Room) -> int:
    return sum(len(p.consumers) for p in room.router.participants.values())


def _median_us(run: Callable[[], object], scrapes: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(scrapes):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _measure(name: str, room: Room, scrapes: int) -> None:
    registry = CollectorRegistry()
    collector = MediaCollector(registry)
    collector.bind(lambda: [room.router], lambda: 0)
    consumers = _consumers(room)
    before = SnapshotScrape()
    timings = {
        "before": _median_us(lambda: before([room.router]), scrapes),
        "collect": _median_us(lambda: list(collector.collect()), scrapes),
        "render": _median_us(lambda: generate_latest(registry), scrapes),
        "counter_totals": _median_us(room.router.counter_totals, scrapes),
        "stats": _median_us(room.router.stats, scrapes),
    }
    print(f"{name}: {consumers} consumers")
    for what, us in timings.items():
        print(f"  {what:15} {us / 1000:7.3f} ms  {us / consumers:6.2f} us/consumer")


async def flowing(subscribers: int, scrapes: int) -> None:
    room = Room()
    try:
        await room.join("teacher", decode="none")
        for i in range(subscribers):
            await room.join(f"s{i}", video=False, audio=False, decode="none")
        await wait_for(
            lambda: all(
                (sink := room.sink(f"s{i}", "teacher", "video")) is not None and sink.frames > 5
                for i in range(subscribers)
            ),
            timeout=30,
            what="video at every subscriber",
        )
        _measure("flowing", room, scrapes)
    finally:
        await room.close()


async def classroom(size: int, scrapes: int) -> None:
    room = Room()
    try:
        for i in range(size):
            participant = room.add_participant(f"p{i}")
            client = MediaClient(
                room.config, video=room.clip, audio=ToneAudioTrack(), decode="none"
            )
            # Registered: the harness answers this participant's subscribe offers.
            room.clients[participant.id] = client
            await participant.publish(await client.publish_offer())
        expected = size * (size - 1) * 2

        def attached() -> bool:
            return all(
                p.subscription.phase == "stable"
                and p.subscription.slot_count == len(p.consumers) == expected // size
                for p in room.router.participants.values()
            )

        await wait_for(attached, timeout=60, what="every consumer in an answered offer")
        _measure("class", room, scrapes)
    finally:
        await room.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--class-size", type=int, default=23)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    await flowing(args.subscribers, args.scrapes)
    await classroom(args.class_size, args.scrapes)


if __name__ == "__main__":
    asyncio.run(main())

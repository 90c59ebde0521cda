"""`Router.counter_totals()`: running per-kind totals that keep what closed entities counted.

Checked against the `stats()` snapshots of real producers and consumers (real aiortc peers
on loopback): the totals are always the closed ones' final counts, each once, plus the
live ones' current counts, and never go down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from scripts.support.loopback import LOOPBACK, Room, wait_for
from sfu import Consumer, CounterTotals, Producer, Router
from sfu.config import SendPath
from sfu.counters import CONSUMER_FIELDS, KINDS, PRODUCER_FIELDS, new_totals


def _expected(producers: Iterable[Producer], consumers: Iterable[Consumer]) -> CounterTotals:
    """Totals summed from `stats()` snapshots, the slow way."""
    totals = new_totals()
    for producer in producers:
        stats = producer.stats()
        into = totals[producer.kind].producers
        for name in PRODUCER_FIELDS:
            setattr(into, name, getattr(into, name) + getattr(stats, name))
    for consumer in consumers:
        cstats = consumer.stats()
        cinto = totals[consumer.kind].consumers
        for name in CONSUMER_FIELDS:
            setattr(cinto, name, getattr(cinto, name) + getattr(cstats, name))
    return totals


def _live(router: Router) -> tuple[list[Producer], list[Consumer]]:
    return list(router.producers.values()), [
        c for p in router.participants.values() for c in p.consumers.values()
    ]


def _flat(totals: CounterTotals) -> dict[tuple[str, str, str], int]:
    flat: dict[tuple[str, str, str], int] = {}
    for kind in KINDS:
        for name in PRODUCER_FIELDS:
            flat[kind, "producer", name] = getattr(totals[kind].producers, name)
        for name in CONSUMER_FIELDS:
            flat[kind, "consumer", name] = getattr(totals[kind].consumers, name)
    return flat


def _not_below(now: CounterTotals, before: CounterTotals) -> None:
    later, earlier = _flat(now), _flat(before)
    lower = {key: (earlier[key], value) for key, value in later.items() if value < earlier[key]}
    assert not lower, f"totals went down: {lower}"


@pytest.mark.parametrize("send_path", ["direct", "aiortc"])
async def test_closed_consumers_and_producers_stay_in_the_totals_exactly_once(
    send_path: SendPath,
) -> None:
    room = Room(dataclasses.replace(LOOPBACK, send_path=send_path))
    try:
        await _join_leave_and_close(room)
    finally:
        await room.close()


async def _join_leave_and_close(room: Room) -> None:
    router = room.router
    assert _flat(router.counter_totals()) == _flat(new_totals())
    await room.join("teacher", decode="none")
    for name in ("s1", "s2"):
        await room.join(name, video=False, audio=False, decode="none")
    await wait_for(
        lambda: all(
            (sink := room.sink(name, "teacher", "video")) is not None and sink.frames >= 10
            for name in ("s1", "s2")
        ),
        timeout=8,
        what="video at both subscribers",
    )
    producers, consumers = _live(router)
    assert len(producers) == 2 and len(consumers) == 4

    # Live only: the totals are the sum of the snapshots (no await in between).
    first = router.counter_totals()
    assert _flat(first) == _flat(_expected(producers, consumers))
    for kind in KINDS:
        assert first[kind].producers.frames > 0
        assert first[kind].consumers.frames_forwarded > 0
        assert first[kind].consumers.packets_forwarded > 0
    assert first["video"].producers.keyframe_requests > 0
    assert first["video"].producers.skipped_frames == 0

    # A subscriber leaves: its consumers' final counts stay in, once.
    gone = list(room.participants["s1"].consumers.values())
    await room.leave("s1")
    assert all(c.closed for c in gone)
    second = router.counter_totals()
    _not_below(second, first)
    live_producers, live_consumers = _live(router)
    assert len(live_consumers) == 2
    assert _flat(second) == _flat(_expected(live_producers, [*live_consumers, *gone]))
    await wait_for(
        lambda: _flat(router.counter_totals()) != _flat(second),
        timeout=3,
        what="the remaining consumers counting on",
    )
    third = router.counter_totals()
    _not_below(third, second)
    live_producers, live_consumers = _live(router)
    assert _flat(third) == _flat(_expected(live_producers, [*live_consumers, *gone]))

    # The publisher leaves: its producers close, and with them every consumer.
    remaining = live_consumers
    await room.leave("teacher")
    assert all(p.closed for p in producers) and all(c.closed for c in consumers)
    assert _live(router) == ([], [])
    fourth = router.counter_totals()
    _not_below(fourth, third)
    assert _flat(fourth) == _flat(_expected(producers, [*gone, *remaining]))

    # Closing the router (s2 still in it, with nothing left to count) changes nothing.
    await router.close()
    assert _flat(router.counter_totals()) == _flat(fourth)


async def test_totals_are_a_copy_the_caller_may_change(room: Room) -> None:
    totals = room.router.counter_totals()
    totals["video"].producers.frames += 5
    totals["audio"].consumers.retransmissions += 1
    assert _flat(room.router.counter_totals()) == _flat(new_totals())

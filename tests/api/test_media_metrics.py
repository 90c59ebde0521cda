"""`MediaCollector` over real routers (the media tests' in-process `Room`, no server):
counters never go down as rooms come and go, and keep what a room counted up to its close."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from api.media_metrics import CONSUMER_COUNTERS, PRODUCER_COUNTERS, CounterLedger, MediaCollector
from scripts.support.loopback import Room, wait_for
from sfu import CounterTotals, Router, refused_packet_totals
from sfu.counters import KINDS, add_totals, new_totals

Values = dict[tuple[str, tuple[str, ...]], float]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(collector: MediaCollector) -> Values:
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


REFUSED = "classroom_refused_packets_total"


def counters(values: Values) -> Values:
    """The per-room counters (refusals are counted for the whole process, see `refusals`)."""
    return {
        key: value
        for key, value in values.items()
        if key[0].endswith("_total") and key[0] != REFUSED
    }


def refusals(values: Values) -> Values:
    return {key: value for key, value in values.items() if key[0] == REFUSED}


def expected(*totals: CounterTotals) -> Values:
    """The counter samples `totals` (summed) should give."""
    summed = new_totals()
    for one in totals:
        add_totals(summed, one)
    values: Values = {}
    for kind in KINDS:
        for name, (_, field) in PRODUCER_COUNTERS.items():
            values[f"{name}_total", (kind,)] = getattr(summed[kind].producers, field)
        for name, (_, field) in CONSUMER_COUNTERS.items():
            values[f"{name}_total", (kind,)] = getattr(summed[kind].consumers, field)
    return values


def not_below(now: Values, before: Values) -> None:
    lower = {key: (before[key], value) for key, value in now.items() if value < before.get(key, 0)}
    assert not lower, f"counters went down: {lower}"


def collector_of(routers: list[Router], ledger: CounterLedger) -> MediaCollector:
    collector = MediaCollector(CollectorRegistry(), ledger)
    collector.bind(lambda: list(routers), lambda: 0)
    return collector


async def forwarding_room() -> Room:
    room = Room()
    await room.join("teacher", decode="none")
    await room.join("student", video=False, audio=False, decode="none")
    await wait_for(
        lambda: (
            (sink := room.sink("student", "teacher", "video")) is not None and sink.frames >= 10
        ),
        timeout=8,
        what="video at the student",
    )
    return room


async def moved(collector: MediaCollector, before: Values) -> Values:
    """Wait for the video counters to move on; the scrape that saw it."""
    found: list[Values] = []

    def check() -> bool:
        found.append(counters(scrape(collector)))
        key = ("classroom_forwarded_frames_total", ("video",))
        return found[-1][key] > before[key]

    await wait_for(check, timeout=3, what="more forwarded video")
    return found[-1]


async def test_a_closed_room_keeps_what_it_counted_up_to_its_close() -> None:
    first = await forwarding_room()
    second: Room | None = None
    routers = [first.router]
    ledger = CounterLedger()
    collector = collector_of(routers, ledger)
    try:
        values = scrape(collector)
        assert values["classroom_rooms", ()] == 1
        assert values["classroom_consumers", ("video", "active")] == 1
        assert values["classroom_producers", ("audio",)] == 1
        before = counters(values)
        assert before == expected(first.router.counter_totals())
        assert before["classroom_forwarded_packets_total", ("video",)] > 0
        # Nothing here is refused, so the process-wide totals hold still between the reads.
        by_reason = {(REFUSED, (reason,)): n for reason, n in refused_packet_totals().items()}
        assert refusals(values) == by_reason and len(by_reason) == 9

        # The room leaves the room list (as `RoomManager.close_session` pops it) while
        # its router still forwards: it is still read, though no longer a room.
        routers.clear()
        values = scrape(collector)
        assert values["classroom_rooms", ()] == 0
        assert values["classroom_consumers", ("video", "active")] == 0
        not_below(counters(values), before)
        later = await moved(collector, before)
        assert ledger.watched == 1

        # It counts on unscraped, then closes: what it counted since `later` is not lost.
        await wait_for(
            lambda: expected(first.router.counter_totals()) != later,
            timeout=3,
            what="counts no scrape has seen",
        )
        await first.close()
        final = first.router.counter_totals()
        after = counters(scrape(collector))
        not_below(after, later)
        assert after == expected(final)
        assert ledger.watched == 0  # let go, its totals retired once
        assert counters(scrape(collector)) == after

        # A new room adds on top of the retired totals.
        second = await forwarding_room()
        routers.append(second.router)
        now = counters(scrape(collector))
        not_below(now, after)
        assert now == expected(final, second.router.counter_totals())
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_a_room_that_left_without_closing_is_let_go_after_the_grace_period() -> None:
    room = await forwarding_room()
    clock = Clock()
    routers = [room.router]
    ledger = CounterLedger(grace=60, clock=clock)
    collector = collector_of(routers, ledger)
    try:
        before = counters(scrape(collector))
        routers.clear()
        scrape(collector)  # noticed gone, still read
        clock.now += 59
        later = await moved(collector, before)
        assert ledger.watched == 1
        clock.now += 2
        last = counters(scrape(collector))  # past the grace period: read once more, retired
        not_below(last, later)
        assert ledger.watched == 0
        await wait_for(
            lambda: expected(room.router.counter_totals()) != last,
            timeout=3,
            what="the router counting on",
        )
        assert counters(scrape(collector)) == last  # no longer read, never lower
    finally:
        await room.close()

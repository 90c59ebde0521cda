"""The presence buffer's rules (pure logic): order, counters coalesced, what a full buffer
gives up first, and the check that keeps a retried event from being stored twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from api.ids import ClassId, SessionId, UserId
from api.models import ActivityEvent, PresenceCounters, PresenceEvent, PresenceKind
from api.presence.buffer import PresenceBuffer, PresenceWrite, already_stored
from api.presence.intervals import presence_intervals

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
GRACE = timedelta(seconds=15)


def event(user: str, kind: PresenceKind, second: float) -> PresenceEvent:
    return PresenceEvent(
        session_id=SessionId("s"),
        class_id=ClassId("c"),
        user_id=UserId(user),
        kind=kind,
        at=T0 + timedelta(seconds=second),
        reason=None if kind == "connected" else "left",
    )


def counters(user: str, camera_ms: int) -> PresenceCounters:
    return PresenceCounters(
        session_id=SessionId("s"),
        class_id=ClassId("c"),
        user_id=UserId(user),
        camera_ms=camera_ms,
        mic_ms=0,
        talk_ms=0,
        last_seen_at=T0 + timedelta(milliseconds=camera_ms),
    )


def mark(user: str, kind: str, on: bool, second: float) -> ActivityEvent:
    return ActivityEvent(
        id=f"{user}-{kind}-{second}",
        session_id=SessionId("s"),
        class_id=ClassId("c"),
        user_id=UserId(user),
        kind="camera" if kind == "camera" else "talking",
        at=T0 + timedelta(seconds=second),
        data={"on": on},
    )


def intervals(buffer: PresenceBuffer, user: str) -> list[tuple[float, float]]:
    events = [w for w in buffer.writes() if isinstance(w, PresenceEvent) and w.user_id == user]
    found = presence_intervals(events, grace=GRACE, open_until=T0 + timedelta(hours=1))
    return [((i.start - T0).total_seconds(), (i.end - T0).total_seconds()) for i in found]


def test_writes_come_out_in_the_order_they_were_pushed() -> None:
    buffer = PresenceBuffer(limit=10, grace=GRACE)
    pushed: list[PresenceWrite] = [
        event("a", "connected", 0),
        counters("a", 1),
        event("b", "connected", 2),
    ]
    for write in pushed:
        buffer.push(write)
    assert buffer.writes() == pushed
    assert buffer.head() == pushed[0]
    buffer.written()
    assert buffer.writes() == pushed[1:]


def test_a_newer_counters_snapshot_replaces_the_waiting_one_but_not_the_one_being_written() -> None:
    buffer = PresenceBuffer(limit=10, grace=GRACE)
    buffer.push(counters("a", 1000))  # the head: being written
    buffer.push(event("a", "disconnected", 2))
    buffer.push(counters("a", 2000))
    buffer.push(counters("a", 3000))
    assert buffer.writes() == [
        counters("a", 1000),
        event("a", "disconnected", 2),
        counters("a", 3000),
    ]
    assert buffer.stats.dropped == buffer.stats.merged == 0


def test_coalescing_keeps_a_full_buffer_exact() -> None:
    buffer = PresenceBuffer(limit=3, grace=GRACE)
    buffer.push(event("a", "connected", 0))
    buffer.push(counters("a", 1000))
    buffer.push(counters("b", 1000))
    for ms in range(2000, 60_000, 1000):  # a minute of heartbeats while full
        buffer.push(counters("a", ms))
        buffer.push(counters("b", ms))
    assert buffer.writes() == [
        event("a", "connected", 0),
        counters("a", 59_000),
        counters("b", 59_000),
    ]
    assert buffer.stats.dropped == 0


def test_a_full_buffer_first_merges_a_reconnect_within_the_grace_window() -> None:
    buffer = PresenceBuffer(limit=6, grace=GRACE)
    for write in [
        event("a", "connected", 0),
        event("b", "connected", 1),
        event("a", "disconnected", 10),
        event("a", "connected", 40),  # a 30 s gap: a new interval
        event("b", "disconnected", 50),
        event("b", "connected", 55),  # 5 s: continues the interval
    ]:
        buffer.push(write)
    before = {user: intervals(buffer, user) for user in "ab"}
    assert before["b"] == [(1, 3600)]
    buffer.push(event("b", "disconnected", 70))
    assert len(buffer) == 5
    assert (buffer.stats.merged, buffer.stats.dropped) == (2, 0)
    assert event("b", "disconnected", 50) not in buffer.writes()
    assert intervals(buffer, "a") == before["a"] == [(0, 10), (40, 3600)]
    assert event("b", "connected", 55) not in buffer.writes()
    assert intervals(buffer, "b") == [(1, 70)]  # the same record as with the pair


def test_then_the_shortest_gap_and_the_record_counts_it_as_presence() -> None:
    buffer = PresenceBuffer(limit=5, grace=GRACE)
    for write in [
        event("a", "connected", 0),
        event("a", "disconnected", 10),
        event("a", "connected", 100),  # 90 s
        event("a", "disconnected", 110),
        event("a", "connected", 140),  # 30 s: the shortest
    ]:
        buffer.push(write)
    buffer.push(event("a", "disconnected", 150))
    assert (buffer.stats.merged, buffer.stats.dropped) == (0, 2)
    assert intervals(buffer, "a") == [(0, 10), (100, 150)]  # first join, last leave exact


def test_before_a_gap_a_full_buffer_gives_up_a_whole_camera_or_talking_span() -> None:
    buffer = PresenceBuffer(limit=6, grace=GRACE)
    writes: list[PresenceWrite] = [
        event("a", "connected", 0),
        mark("a", "talking", True, 1),
        mark("a", "camera", True, 2),
        mark("a", "talking", False, 3),
        event("a", "disconnected", 10),
        event("a", "connected", 100),  # a 90 s gap
    ]
    for write in writes:
        buffer.push(write)
    buffer.push(mark("a", "talking", True, 101))
    # The oldest mark went with the one that ends its span: the gap stays in the record.
    assert (buffer.stats.merged, buffer.stats.dropped) == (0, 2)
    assert mark("a", "talking", True, 1) not in buffer.writes()
    assert mark("a", "talking", False, 3) not in buffer.writes()
    assert intervals(buffer, "a") == [(0, 10), (100, 3600)]
    buffer.push(mark("a", "talking", False, 102))
    assert len(buffer) == 6 and buffer.stats.dropped == 2
    buffer.push(mark("a", "camera", False, 103))
    assert mark("a", "camera", True, 2) not in buffer.writes()  # alone: its end is arriving
    assert mark("a", "camera", False, 103) in buffer.writes()
    assert buffer.stats.dropped == 3


def test_a_reconnect_within_grace_is_merged_before_any_mark_goes() -> None:
    buffer = PresenceBuffer(limit=4, grace=GRACE)
    writes: list[PresenceWrite] = [
        event("a", "connected", 0),
        mark("a", "camera", True, 1),
        event("a", "disconnected", 10),
        event("a", "connected", 12),
    ]
    for write in writes:
        buffer.push(write)
    buffer.push(mark("a", "camera", False, 13))
    assert (buffer.stats.merged, buffer.stats.dropped) == (2, 0)
    assert buffer.writes()[1:] == [mark("a", "camera", True, 1), mark("a", "camera", False, 13)]


def test_the_event_being_pushed_can_close_the_pair() -> None:
    buffer = PresenceBuffer(limit=3, grace=GRACE)
    buffer.push(event("a", "connected", 0))
    buffer.push(event("b", "connected", 1))
    buffer.push(event("b", "disconnected", 5))
    buffer.push(event("b", "connected", 6))  # pairs with the waiting disconnect
    assert buffer.writes() == [event("a", "connected", 0), event("b", "connected", 1)]
    assert (buffer.stats.merged, buffer.stats.dropped) == (2, 0)


def test_the_write_being_written_is_never_given_up() -> None:
    buffer = PresenceBuffer(limit=2, grace=GRACE)
    buffer.push(event("a", "disconnected", 0))  # the head
    buffer.push(event("a", "connected", 1))
    buffer.push(counters("b", 10))
    assert buffer.head() == event("a", "disconnected", 0)
    assert buffer.stats.dropped == 1  # the counters: there was nothing else to give up


def test_without_pairs_the_oldest_counters_go_then_the_pushed_write() -> None:
    buffer = PresenceBuffer(limit=4, grace=GRACE)
    buffer.push(event("a", "connected", 0))
    buffer.push(counters("a", 1000))
    buffer.push(event("b", "connected", 1))
    buffer.push(counters("b", 1000))
    buffer.push(event("c", "connected", 2))
    assert buffer.writes() == [
        event("a", "connected", 0),
        event("b", "connected", 1),
        counters("b", 1000),
        event("c", "connected", 2),
    ]
    buffer.push(event("d", "connected", 3))
    buffer.push(event("e", "connected", 4))
    assert event("d", "connected", 3) in buffer.writes()
    assert event("e", "connected", 4) not in buffer.writes()
    assert len(buffer) == 4
    assert buffer.stats.dropped == 3


def test_a_mark_is_written_through_once_what_came_before_it_is_stored() -> None:
    buffer = PresenceBuffer(limit=10, grace=GRACE)
    buffer.push(event("a", "connected", 0))
    buffer.push(counters("a", 1000))
    mark = buffer.mark()
    assert not buffer.written_through(mark)
    buffer.push(counters("a", 2000))  # replaces the one before the mark
    buffer.written()
    assert buffer.written_through(mark)  # only the newer snapshot waits
    assert len(buffer) == 1
    assert PresenceBuffer(limit=1, grace=GRACE).written_through(0)


def test_oldest_age_is_the_head_s_wait() -> None:
    now = [100.0]
    buffer = PresenceBuffer(limit=10, grace=GRACE, clock=lambda: now[0])
    assert buffer.oldest_age() is None
    buffer.push(event("a", "connected", 0))
    now[0] = 102.5
    buffer.push(event("a", "disconnected", 1))
    assert buffer.oldest_age() == 2.5


def test_a_retried_event_is_found_stored_by_its_millisecond_moment() -> None:
    pushed = event("a", "disconnected", 10.0004567)
    stored = replace(pushed, at=T0 + timedelta(seconds=10))
    assert already_stored(stored, pushed)
    assert not already_stored(None, pushed)
    assert not already_stored(event("a", "connected", 10.0004567), pushed)
    assert not already_stored(event("a", "disconnected", 5), pushed)

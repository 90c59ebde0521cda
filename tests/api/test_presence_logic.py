"""Presence intervals and the status policy: pure logic, checked with exact times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.ids import ClassId, SessionId, UserId
from api.models import AttendancePolicy, PresenceEvent, PresenceKind
from api.presence.intervals import Interval, clip, presence_intervals, total_seconds
from api.presence.policy import derived_status

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
GRACE = timedelta(seconds=15)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def events(*pairs: tuple[PresenceKind, float]) -> list[PresenceEvent]:
    return [
        PresenceEvent(SessionId("s"), ClassId("c"), UserId("u"), kind, at(offset))
        for kind, offset in pairs
    ]


def test_a_reconnect_within_grace_continues_the_interval() -> None:
    got = presence_intervals(
        events(("connected", 0), ("disconnected", 100), ("connected", 105), ("disconnected", 200)),
        grace=GRACE,
        open_until=at(300),
    )
    assert got == [Interval(at(0), at(200))]


def test_a_gap_longer_than_grace_starts_a_new_interval() -> None:
    got = presence_intervals(
        events(("connected", 0), ("disconnected", 100), ("connected", 160), ("disconnected", 200)),
        grace=GRACE,
        open_until=at(300),
    )
    assert got == [Interval(at(0), at(100)), Interval(at(160), at(200))]
    assert total_seconds(got) == 140


def test_an_open_connection_is_closed_at_open_until() -> None:
    got = presence_intervals(events(("connected", 10)), grace=GRACE, open_until=at(70))
    assert got == [Interval(at(10), at(70))]


def test_repeated_connects_and_stray_disconnects_count_once() -> None:
    got = presence_intervals(
        events(
            ("disconnected", 1),
            ("connected", 5),
            ("connected", 6),
            ("disconnected", 50),
            ("disconnected", 51),
        ),
        grace=GRACE,
        open_until=at(99),
    )
    assert got == [Interval(at(5), at(50))]


def test_clip_keeps_only_what_is_inside_the_session() -> None:
    assert clip([Interval(at(-10), at(10)), Interval(at(50), at(80))], at(0), at(60)) == [
        Interval(at(0), at(10)),
        Interval(at(50), at(60)),
    ]


POLICY = AttendancePolicy(present_ratio=0.75, late_after_seconds=600)


def test_status_is_absent_without_presence() -> None:
    assert derived_status(POLICY, [], at(0), at(3600)) == "absent"


def test_status_is_present_at_the_ratio_and_absent_below_it() -> None:
    assert derived_status(POLICY, [Interval(at(0), at(2700))], at(0), at(3600)) == "present"
    assert derived_status(POLICY, [Interval(at(0), at(2699))], at(0), at(3600)) == "absent"


def test_status_is_late_when_the_first_join_is_after_the_threshold() -> None:
    assert derived_status(POLICY, [Interval(at(601), at(3600))], at(0), at(3600)) == "late"
    assert derived_status(POLICY, [Interval(at(600), at(3600))], at(0), at(3600)) == "present"

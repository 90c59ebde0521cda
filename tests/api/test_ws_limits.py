"""What one client may ask over WebSockets: a token bucket of events per socket, a cap on
sockets per account, bounded work per publish offer. Real server, real sockets; the
bucket's arithmetic also on a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from api.config import ConfigError, Settings, load_settings
from api.ws.limits import POLICY_VIOLATION, TOO_MANY_EVENTS, TOO_MANY_SOCKETS, EventBucket
from sfu import InvalidSdp
from sfu.sdp import MAX_PUBLISH_SECTIONS, plan_publish

from .conftest import RunningServer, ServerFactory

NO_SESSION = "No active attendance session"


def test_a_bucket_gives_its_burst_then_its_rate_and_counts_refusals_in_a_row() -> None:
    now = [100.0]
    bucket = EventBucket(rate=4.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.refused_in_a_row == 1 and not bucket.exhausted
    now[0] += 0.25  # one token back
    assert bucket.take() and not bucket.take()
    assert bucket.refused_in_a_row == 1
    assert not bucket.take() and not bucket.take()
    assert bucket.exhausted  # as many refusals in a row as the burst
    now[0] += 60.0  # a long pause refills only up to the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError):
        EventBucket(rate=0, burst=3)


def test_the_limits_are_read_from_the_environment_and_checked() -> None:
    settings = load_settings(
        {"WS_EVENTS_PER_SECOND": "5", "WS_EVENT_BURST": "7", "WS_MAX_SOCKETS_PER_USER": "2"}
    )
    assert (settings.ws_events_per_second, settings.ws_event_burst) == (5.0, 7)
    assert settings.ws_max_sockets_per_user == 2
    for name, value in (("WS_EVENT_BURST", "0"), ("WS_MAX_SOCKETS_PER_USER", "x")):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: value})


@pytest.fixture
async def limited(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(
        replace(settings, ws_events_per_second=10.0, ws_event_burst=5, ws_max_sockets_per_user=2)
    )


async def test_events_over_the_rate_are_answered_not_run_then_a_flooder_is_closed(
    limited: RunningServer,
) -> None:
    room = await limited.classroom(students=1)
    socket = await limited.api.open_socket(room.teacher.token)
    for _ in range(7):
        await socket.send("DONE", {})
    answers = [(await socket.next("ERROR"))["message"] for _ in range(7)]
    assert answers == [NO_SESSION] * 5 + [TOO_MANY_EVENTS] * 2
    await asyncio.sleep(0.35)  # 3 tokens back at 10 a second
    for _ in range(3):
        await socket.send("DONE", {})
    assert [(await socket.next("ERROR"))["message"] for _ in range(3)] == [NO_SESSION] * 3
    # An ERROR says which event it refused, so that a client's pending request ends.
    for _ in range(12):
        await socket.send("TODAY_SUMMARY", {})
    refused = await socket.next("ERROR", where=lambda e: e["message"] == TOO_MANY_EVENTS)
    assert refused == {"message": TOO_MANY_EVENTS, "event": "TODAY_SUMMARY"}
    async with asyncio.timeout(5):
        while not socket.closed:
            await asyncio.sleep(0.02)
    assert socket.close_code == POLICY_VIOLATION
    # Another socket of the same teacher is not affected: the bucket is per socket.
    other = await limited.api.open_socket(room.teacher.token)
    await other.send("DONE", {})
    assert (await other.next("ERROR"))["message"] == NO_SESSION
    await other.close()


async def test_an_account_may_hold_a_bounded_number_of_sockets(limited: RunningServer) -> None:
    student = await limited.account("student")
    hub = limited.services.hub

    async def registered(count: int) -> None:
        # A socket is counted once its token is checked, after the handshake: sockets
        # opened at once are checked in any order.
        async with asyncio.timeout(5):
            while hub.count_of(student.id) != count:
                await asyncio.sleep(0.01)

    first = await limited.api.open_socket(student.token)
    second = await limited.api.open_socket(student.token)
    await registered(2)
    third = await limited.api.open_socket(student.token)
    assert await third.next("ERROR") == {"message": TOO_MANY_SOCKETS, "event": None}
    async with asyncio.timeout(5):
        while not third.closed:
            await asyncio.sleep(0.02)
    assert third.close_code == POLICY_VIOLATION
    # Other accounts are not affected, and a freed place can be taken again.
    teacher = await limited.account("teacher")
    teachers = await limited.api.open_socket(teacher.token)
    assert await teachers.quiet(0.1) == []
    await first.close()
    await registered(1)
    again = await limited.api.open_socket(student.token)
    assert await again.quiet(0.1) == []
    for socket in (second, again, teachers):
        await socket.close()


def test_a_publish_offer_with_too_many_m_sections_is_refused_before_it_is_parsed() -> None:
    section = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\n"
    offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + "".join(
        section.format(i) for i in range(MAX_PUBLISH_SECTIONS + 1)
    )
    with pytest.raises(InvalidSdp) as refused:
        plan_publish(offer, ("VP8",))
    sections = MAX_PUBLISH_SECTIONS + 1
    assert refused.value.reason == f"the offer has {sections} m-sections, more than {sections - 1}"

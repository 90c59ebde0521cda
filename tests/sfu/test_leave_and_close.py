"""Leaving removes a participant's media everywhere; closing leaves nothing running."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import psutil
import pytest

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.client import MediaClient
from sfu import Closed


def _udp_sockets() -> int:
    return len(psutil.Process().net_connections(kind="udp"))


async def _settle() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    for _ in range(50):
        others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not others:
            return []
        await asyncio.sleep(0.02)
    return others


async def test_a_leaver_disappears_from_everyone_and_its_m_sections_are_reused(room: Room) -> None:
    for name in ("teacher", "student1", "student2"):
        await room.join(name)

    def flowing(receiver: str, publisher: str) -> bool:
        sink = room.sink(receiver, publisher, "video")
        return sink is not None and sink.frames >= 5

    await wait_for(
        lambda: all(flowing(r, p) for r in room.clients for p in room.clients if r != p),
        timeout=8,
        what="everyone receiving",
    )
    leaver = room.participants["student2"]
    teacher_subscription = room.participants["teacher"].subscription
    slots = teacher_subscription.slot_count
    await room.leave("student2")

    def dropped(name: str) -> bool:
        return room.clients[name].active_participants() == {"teacher", "student1"} - {name}

    await wait_for(lambda: dropped("teacher") and dropped("student1"), what="student2 dropped")
    assert set(room.router.participants) == {"teacher", "student1"}
    assert {p.participant_id for p in room.router.producers.values()} == {"teacher", "student1"}
    for participant in room.router.participants.values():
        assert all(c.producer.participant_id != "student2" for c in participant.consumers.values())
    assert room.events.log.count(("producer_removed", "student2")) == 2
    assert ("disconnected", "student2") in room.events.log
    assert leaver.closed and not leaver.producers and not leaver.consumers
    await leaver.close()  # idempotent
    try:
        await leaver.publish("v=0")
    except Closed:
        pass
    else:
        raise AssertionError("a closed participant accepted an offer")

    # A newcomer takes over the freed m-sections instead of growing the SDP.
    await room.join("student3")
    await wait_for(
        lambda: flowing("teacher", "student3") and flowing("student3", "teacher"), timeout=8
    )
    assert teacher_subscription.slot_count == slots
    sink = room.sink("teacher", "student3", "video")
    assert sink is not None and sink.decode_errors == 0 and sink.sizes == {(640, 360)}
    assert sink.frames_before_keyframe == 0
    assert not room.answer_errors


async def test_closing_the_router_twice_leaves_no_task_and_no_socket_behind() -> None:
    before = _udp_sockets()
    room = Room()
    await room.join("teacher")
    await room.join("student")
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 5,
        what="media",
    )
    assert _udp_sockets() > before
    await room.router.close()
    await room.router.close()
    await room.close()
    assert not room.router.participants and not room.router.producers
    assert ("disconnected", "teacher") in room.events.log
    leftovers = await _settle()
    assert leftovers == [], leftovers
    assert _udp_sockets() == before
    try:
        room.router.add_participant(room.router.id)  # type: ignore[arg-type]
    except Closed:
        pass
    else:
        raise AssertionError("a closed router accepted a participant")


async def test_a_track_arriving_while_the_subscribe_connection_closes_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The connection deadline or a failed ICE check closes the subscribe connection while
    # the room still adds tracks to it (a rejoin under churn): the offer that change asks
    # for meets a connection whose close has begun but not finished.
    room = Room(auto_consume=False)
    try:
        await room.join("teacher")
        await room.join("late")
        room.add_participant("student")
        room.clients["student"] = MediaClient(room.config, decode="all")
        student = room.participants["student"]
        teacher, late = (room.participants[name].producers.values() for name in ("teacher", "late"))
        for producer in teacher:
            room.router.consume(student, producer)
        await wait_for(lambda: room.decoded("student", "teacher") >= 3, timeout=10)
        pc = student.subscribe_pc
        assert pc is not None
        caplog.set_level(logging.DEBUG, logger="sfu.subscription")
        offers = student.subscription.offers_sent
        closing = asyncio.ensure_future(pc.close())
        await asyncio.sleep(0)
        assert pc.signalingState == "closed" and pc.connectionState != "closed"
        for producer in late:
            room.router.consume(student, producer)
        await closing
        await wait_for(lambda: student.subscription.phase == "stable", timeout=5)
        assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert student.subscription.offers_sent == offers  # nothing offered on it
    finally:
        await room.close()


async def test_a_client_closing_its_connections_as_it_leaves_is_not_a_media_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A leaving client sends LEAVE_ROOM and closes its connections at once; its DTLS
    # close_notify can be handled before the leave is. Only a client that closes its
    # media and stays is reported, once the grace has passed.
    room = Room(replace(LOOPBACK, remote_close_grace=0.4))
    try:
        for name in ("teacher", "leaver", "stayer"):
            await room.join(name, video=False)
        await wait_for(
            lambda: all(room.participants[n].connected for n in room.participants),
            timeout=10,
            what="everyone connected",
        )
        for name in ("leaver", "stayer"):
            await room.clients.pop(name).close()  # close_notify on both connections
        await wait_for(
            lambda: all(
                pc is not None and pc.connectionState == "closed"
                for name in ("leaver", "stayer")
                for pc in (room.participants[name].publish_pc, room.participants[name].subscribe_pc)
            ),
            timeout=5,
            what="the server saw both clients close",
        )
        caplog.set_level(logging.DEBUG, logger="sfu.subscription")
        # Someone joins meanwhile: nothing is offered on a connection the client closed.
        await room.join("late", video=False)
        await room.participants["leaver"].close()  # its LEAVE_ROOM, handled late
        await asyncio.sleep(0.6)
        assert sorted(room.events.disconnected) == [("leaver", "closed"), ("stayer", "failed")]
        assert [r.message for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        await room.close()

"""A connection that cannot come up is reported failed after `ice_connect_timeout`,
instead of after aioice's own minute of retransmissions."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.client import MediaClient
from sfu import ParticipantId

DEADLINE = replace(LOOPBACK, ice_connect_timeout=1.0)


async def test_an_unreachable_client_is_reported_failed_at_the_deadline() -> None:
    room = Room(DEADLINE)
    client = MediaClient(DEADLINE, video=room.clip)
    try:
        participant = room.router.add_participant(ParticipantId("unreachable"), {})
        offer = await client.publish_offer()
        # Its candidates point at the discard port and it never sees the answer, so
        # no check succeeds either way.
        offer = re.sub(r"(a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1) \d+", r"\1 9", offer)
        started = time.monotonic()
        await participant.publish(offer)
        await wait_for(lambda: room.events.disconnected != [], timeout=5, what="a failure")
        elapsed = time.monotonic() - started
        assert room.events.disconnected == [("unreachable", "failed")]
        assert 0.9 < elapsed < 2.5, elapsed
    finally:
        await client.close()
        await room.close()


async def test_connections_that_come_up_in_time_are_left_alone() -> None:
    room = Room(DEADLINE)
    try:
        await room.join("teacher")
        await room.join("student", video=False, audio=False)
        await wait_for(
            lambda: (
                (sink := room.sink("student", "teacher", "video")) is not None and sink.decoded >= 3
            ),
            what="media",
        )
        await asyncio.sleep(1.2)  # past the deadline of every connection
        assert room.events.disconnected == []
        assert all(p.connected for p in room.participants.values())
    finally:
        await room.close()

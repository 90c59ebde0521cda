"""The class room's forwarding policy on a real `sfu.Router` with real aiortc publishers:
everyone receives every track of everyone else, whoever joined or published first.
(`test_room_media.py` checks the same through the server, with media decoded.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from api.rooms.forwarding_policy import EveryoneReceivesEveryone
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from sfu import MediaConfig, Participant, ParticipantId, Producer, Router, RouterId, RouterListener

LOOPBACK = MediaConfig(host_addresses=("127.0.0.1",), stats_interval=None)


class PolicyRoom(RouterListener):
    """A router wired to the policy the way `ClassRoom` wires it."""

    def __init__(self) -> None:
        self.router = Router(RouterId("policy"), LOOPBACK, self)
        self.policy = EveryoneReceivesEveryone(self.router)
        self.clients: list[MediaClient] = []

    def on_producer_added(self, producer: Producer) -> None:
        self.policy.producer_added(producer)

    def join(self, name: str) -> Participant:
        participant = self.router.add_participant(ParticipantId(name))
        self.policy.participant_joined(participant)
        return participant

    async def publish(self, participant: Participant, *, video: bool = True) -> None:
        client = MediaClient(LOOPBACK, video=vp8_clip(3) if video else None, audio=ToneAudioTrack())
        self.clients.append(client)
        await participant.publish(await client.publish_offer())

    def received(self, participant: Participant) -> set[tuple[str, str]]:
        """(publisher, kind) of every track `participant` consumes."""
        return {(c.producer.participant_id, c.kind) for c in participant.consumers.values()}

    async def close(self) -> None:
        await self.router.close()
        await asyncio.gather(*(client.close() for client in self.clients))


@pytest.fixture
async def room() -> AsyncIterator[PolicyRoom]:
    room = PolicyRoom()
    try:
        yield room
    finally:
        await room.close()


async def test_everyone_receives_everyone_else_whoever_came_first(room: PolicyRoom) -> None:
    teacher = room.join("teacher")
    await room.publish(teacher)
    early = room.join("early")  # joins after the teacher published
    await room.publish(early, video=False)  # publishes after joining
    watcher = room.join("watcher")  # publishes nothing
    assert room.received(teacher) == {("early", "audio")}
    assert room.received(early) == {("teacher", "audio"), ("teacher", "video")}
    assert room.received(watcher) == {
        ("teacher", "audio"),
        ("teacher", "video"),
        ("early", "audio"),
    }
    # Nobody consumes their own tracks, and the watcher's are nobody's to consume.
    for participant in (teacher, early, watcher):
        assert participant.id not in {p for p, _ in room.received(participant)}


async def test_closed_tracks_leave_their_consumers_and_new_ones_reach_everyone(
    room: PolicyRoom,
) -> None:
    teacher = room.join("teacher")
    student = room.join("student")
    await room.publish(teacher)
    assert room.received(student) == {("teacher", "audio"), ("teacher", "video")}
    for producer in list(teacher.producers.values()):
        producer.close()  # e.g. renegotiated away
    assert room.received(student) == set()
    await room.publish(student)
    assert room.received(teacher) == {("student", "audio"), ("student", "video")}

"""The class room's forwarding policy on a real `sfu.Router` with real aiortc publishers:
everyone consumes every source of everyone else, whoever joined or published first, and
each consumer forwards what its subscriber asked for (`SUBSCRIPTION`), which the
subscriber is told (`LAYERS`). (`test_room_media.py` and `test_selective_forwarding.py`
check the same through the server, with media decoded.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from api.rooms.forwarding_policy import SelectiveForwarding
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import EncodedVideoTrack, ToneAudioTrack, vp8_clip
from scripts.synthpeer.temporal import TemporalLayersPacker
from sfu import (
    Consumer,
    MediaConfig,
    Participant,
    ParticipantId,
    Producer,
    Router,
    RouterId,
    RouterListener,
    TrackSpec,
    create_peer_connection,
)
from sfu import set_local_description as server_style_description
from sfu.aiortc_adapter import testing as adapter_testing

LOOPBACK = MediaConfig(host_addresses=("127.0.0.1",), stats_interval=None)


class PolicyRoom(RouterListener):
    """A router wired to the policy the way `ClassRoom` wires it."""

    def __init__(self) -> None:
        self.router = Router(RouterId("policy"), LOOPBACK, self)
        self.policy = SelectiveForwarding(self.router, self.on_layers)
        self.clients: list[MediaClient] = []
        self.layers: dict[str, dict[str, dict[str, Any]]] = {}
        """What each subscriber was told it gets (LAYERS merged)."""

    def on_layers(self, participant: Participant, layers: dict[str, dict[str, Any]]) -> None:
        self.layers.setdefault(participant.id, {}).update(layers)

    def on_producer_added(self, producer: Producer) -> None:
        self.policy.producer_added(producer)

    def on_producer_removed(self, producer: Producer) -> None:
        self.policy.producer_removed(producer)

    def join(self, name: str, role: str = "student") -> Participant:
        participant = self.router.add_participant(
            ParticipantId(name), {"userId": name, "role": role}
        )
        self.policy.participant_joined(participant)
        return participant

    async def publish(self, participant: Participant, *, video: bool = True) -> None:
        client = MediaClient(LOOPBACK, video=vp8_clip(3) if video else None, audio=ToneAudioTrack())
        self.clients.append(client)
        await participant.publish(await client.publish_offer())

    def received(self, participant: Participant) -> set[tuple[str, str]]:
        """(publisher, kind) of every track `participant` consumes."""
        return {(c.publisher_id, c.kind) for c in participant.consumers.values()}

    def consumer(self, subscriber: Participant, publisher: str, source: str) -> Consumer:
        return next(
            c
            for c in subscriber.consumers.values()
            if c.publisher_id == publisher and c.source == source
        )

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


async def test_a_subscription_pauses_and_resumes_and_the_subscriber_is_told(
    room: PolicyRoom,
) -> None:
    teacher = room.join("teacher", role="teacher")
    student = room.join("student")
    await room.publish(teacher)
    assert room.layers["student"] == {
        "teacher": {"camera": "high", "microphone": "on", "reason": "requested"}
    }
    camera = room.consumer(student, "teacher", "camera")
    microphone = room.consumer(student, "teacher", "microphone")
    assert not camera.paused and camera.preferred_layer == 1
    room.policy.subscribe(student, {"teacher": {"camera": "off"}})
    assert camera.paused and not microphone.paused
    assert room.layers["student"]["teacher"]["camera"] == "off"
    room.policy.subscribe(student, {"teacher": {"microphone": "off"}})  # merged, not replaced
    assert camera.paused and microphone.paused
    room.policy.subscribe(student, {"teacher": {"camera": "low", "microphone": "on"}})
    # A camera published in one layer is that layer, whatever was asked for.
    assert not camera.paused and camera.preferred_layer == 1 and not microphone.paused
    assert room.layers["student"]["teacher"] == {
        "camera": "high",
        "microphone": "on",
        "reason": "requested",
    }


async def test_requests_about_users_not_yet_here_apply_when_they_publish(
    room: PolicyRoom,
) -> None:
    student = room.join("student")
    room.policy.subscribe(student, {"late": {"camera": "off"}})
    late = room.join("late")
    await room.publish(late)
    assert room.consumer(student, "late", "camera").paused
    assert not room.consumer(student, "late", "microphone").paused
    # Nothing changed: nothing more is told.
    told = dict(room.layers["student"])
    room.policy.subscribe(student, {"late": {"camera": "off"}})
    assert room.layers["student"] == told
    room.policy.participant_left(student)
    assert room.policy.users_named_after(student, {}) == 0


async def test_a_frame_rate_cap_sent_before_the_layers_are_measured_applies_once_they_are(
    room: PolicyRoom,
) -> None:
    # The cap comes right after the share starts: its temporal layers are not measured
    # yet, so nothing can be thinned. The room's regular reallocation applies it later.
    teacher = room.join("teacher", role="teacher")
    student = room.join("student")
    pc = create_peer_connection(LOOPBACK)
    track = EncodedVideoTrack(vp8_clip(40, 320, 180, keyframes_only=True))
    transceiver = pc.addTransceiver(track, direction="sendonly")
    adapter_testing.use_packer(transceiver.sender, TemporalLayersPacker())
    try:
        offer = await pc.createOffer()
        sdp = await server_style_description(pc, offer, LOOPBACK)
        answer = await teacher.publish(sdp, {str(transceiver.mid): TrackSpec("screen")})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        room.policy.subscribe(student, {}, {"teacher": {"screen": 1.0}})
        assert "frameRate" not in room.layers["student"]["teacher"]
        screen = room.consumer(student, "teacher", "screen")
        producer = screen.producer
        for _ in range(100):
            if producer.temporal_layers == 3:
                break
            await asyncio.sleep(0.05)
        assert producer.temporal_layers == 3
        room.policy.reallocate()  # what the room does every second
        assert room.layers["student"]["teacher"]["frameRate"] == {"screen": 0.25}
        assert screen.max_temporal_layer == 0
    finally:
        await pc.close()

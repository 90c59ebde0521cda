"""A camera published in two layers (two tracks, Galène's way) with real aiortc peers on
loopback: one consumer and one m-section per (publisher, source), layer switches only at
a keyframe of the new layer and invisible to the decoder, layers that come and go,
producers paused for everyone, and digital silence withheld."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.media import EncodedVideoTrack, vp8_clip
from scripts.synthpeer.sink import StreamSink
from sfu import (
    Consumer,
    InvalidSdp,
    Participant,
    Producer,
    TrackSpec,
    create_peer_connection,
    native_receive,
)
from sfu import set_local_description as server_style_description
from sfu.aiortc_adapter import testing as adapter_testing
from tests.native_extensions import require_extension

HIGH = (640, 360)
LOW = (320, 180)
CLIP = 60


class LayeredPublisher:
    """An aiortc client publishing one camera as two tracks, high and low."""

    def __init__(self, room: Room, name: str) -> None:
        self.room = room
        self.name = name
        self.pc: RTCPeerConnection = create_peer_connection(room.config)
        self.high = EncodedVideoTrack(vp8_clip(CLIP, *HIGH))
        self.low = EncodedVideoTrack(vp8_clip(CLIP, *LOW, bitrate=150_000))
        self.mids: dict[str, str] = {}

    async def publish(self) -> Participant:
        participant = self.room.add_participant(self.name)
        for track in (self.high, self.low):
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            adapter_testing.on_keyframe_request(transceiver.sender, track.request_keyframe)
        await self.negotiate(participant)
        return participant

    async def negotiate(self, participant: Participant) -> None:
        offer = await self.pc.createOffer()
        sdp = await server_style_description(self.pc, offer, self.room.config)
        transceivers = self.pc.getTransceivers()
        self.mids = {"high": str(transceivers[0].mid), "low": str(transceivers[1].mid)}
        tracks = {
            self.mids["high"]: TrackSpec("camera", 1),
            self.mids["low"]: TrackSpec("camera", 0),
        }
        answer = await participant.publish(sdp, tracks)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


@pytest.fixture
async def publisher(room: Room) -> AsyncIterator[LayeredPublisher]:
    publisher = LayeredPublisher(room, "teacher")
    try:
        yield publisher
    finally:
        await publisher.close()


def camera_sink(room: Room, viewer: str) -> StreamSink | None:
    return room.sink(viewer, "teacher", "video")


def camera_consumer(room: Room, viewer: str) -> Consumer:
    return next(c for c in room.participants[viewer].consumers.values() if c.source == "camera")


async def watch(room: Room, name: str) -> StreamSink:
    await room.join(name, video=False, audio=False, decode="all")
    await wait_for(
        lambda: (sink := camera_sink(room, name)) is not None and sink.decoded >= 5,
        timeout=10,
        what="decoded camera frames",
    )
    sink = camera_sink(room, name)
    assert sink is not None
    return sink


async def decodes_size(sink: StreamSink, size: tuple[int, int], frames: int = 5) -> None:
    """Wait until `sink` decodes `frames` more pictures and the last one is `size`."""
    start = sink.decoded
    await wait_for(
        lambda: sink.decoded >= start + frames and sink.last_size == size,
        timeout=10,
        what=f"pictures of {size}",
    )


async def test_two_layers_are_one_consumer_and_one_m_section(
    room: Room, publisher: LayeredPublisher
) -> None:
    await publisher.publish()
    layers = sorted(
        (p.source, p.layer) for p in room.router.producers.values() if p.kind == "video"
    )
    assert layers == [("camera", 0), ("camera", 1)]
    sink = await watch(room, "student")
    offer, streams = room.events.offers["student"]
    assert offer.count("m=video") == 1
    assert list(streams.values()) == [{"userId": "teacher", "source": "camera"}]
    consumer = camera_consumer(room, "student")
    assert consumer.layers == (0, 1) and consumer.current_layer == 1
    assert sink.last_size == HIGH


async def test_switching_layers_waits_for_a_keyframe_and_never_breaks_decoding(
    room: Room, publisher: LayeredPublisher
) -> None:
    await publisher.publish()
    sink = await watch(room, "student")
    consumer = camera_consumer(room, "student")
    offers = room.participants["student"].subscription.offers_sent
    low_keyframes = publisher.low.keyframe_requests
    consumer.set_preferred_layer(0)
    # The high layer goes on until the low one's keyframe (requested at once) arrives.
    assert consumer.target_layer == 0 and consumer.current_layer == 1
    await decodes_size(sink, LOW)
    assert publisher.low.keyframe_requests > low_keyframes
    assert consumer.current_layer == 0 and consumer.layer_switches == 1
    for switch in range(19):
        consumer.set_preferred_layer(1 if switch % 2 == 0 else 0)
        await decodes_size(sink, HIGH if switch % 2 == 0 else LOW, frames=3)
    assert consumer.layer_switches == 20
    assert sink.decode_errors == 0 and sink.losses == 0
    # One stream all along: no renegotiation, one m-section.
    assert room.participants["student"].subscription.offers_sent == offers
    assert consumer.stats().layer_switches == 20


async def test_preference_below_every_layer_takes_the_lowest(
    room: Room, publisher: LayeredPublisher
) -> None:
    await publisher.publish()
    sink = await watch(room, "student")
    consumer = camera_consumer(room, "student")
    consumer.set_preferred_layer(-1)
    await decodes_size(sink, LOW)
    consumer.set_preferred_layer(None)
    await decodes_size(sink, HIGH)


async def test_a_layer_going_away_leaves_the_consumer_on_the_other(
    room: Room, publisher: LayeredPublisher
) -> None:
    participant = await publisher.publish()
    sink = await watch(room, "student")
    consumer = camera_consumer(room, "student")
    high = next(t for t in publisher.pc.getTransceivers() if t.mid == publisher.mids["high"])
    high.direction = "inactive"
    await publisher.negotiate(participant)
    await decodes_size(sink, LOW)
    assert not consumer.closed and consumer.layers == (0,)
    high.direction = "sendonly"
    await publisher.negotiate(participant)
    await wait_for(lambda: consumer.layers == (0, 1), what="the high layer back")
    await decodes_size(sink, HIGH)
    assert sink.decode_errors == 0
    assert camera_consumer(room, "student") is consumer


async def test_each_subscriber_gets_its_own_layer(room: Room, publisher: LayeredPublisher) -> None:
    await publisher.publish()
    small = await watch(room, "small")
    large = await watch(room, "large")
    camera_consumer(room, "small").set_preferred_layer(0)
    await decodes_size(small, LOW)
    await decodes_size(large, HIGH)


async def test_two_tracks_of_one_source_and_layer_are_refused(room: Room) -> None:
    publisher = LayeredPublisher(room, "teacher")
    try:
        participant = room.add_participant("teacher")
        publisher.pc.addTransceiver(publisher.high, direction="sendonly")
        publisher.pc.addTransceiver(publisher.low, direction="sendonly")
        offer = await publisher.pc.createOffer()
        sdp = await server_style_description(publisher.pc, offer, room.config)
        mids = [str(t.mid) for t in publisher.pc.getTransceivers()]
        with pytest.raises(InvalidSdp) as refused:
            await participant.publish(sdp, {mid: TrackSpec("camera", 1) for mid in mids})
        assert refused.value.reason == (
            f"m-sections with mid {mids[0]!r} and {mids[1]!r} are both camera layer 1"
        )
        with pytest.raises(InvalidSdp) as wrong_kind:
            await participant.publish(sdp, {mids[0]: TrackSpec("microphone")})
        assert wrong_kind.value.reason == (
            "offer m-section 0 (video) is named microphone, which is audio"
        )
        with pytest.raises(InvalidSdp) as unknown:
            await participant.publish(sdp, {"nine": TrackSpec("screen")})
        assert unknown.value.reason == (
            "tracks names mid 'nine', which is not an audio or video m-section of the offer"
        )
        assert not room.router.producers
    finally:
        await publisher.close()


def audio_of(room: Room, name: str) -> Producer:
    return next(
        p for p in room.router.producers.values() if p.participant_id == name and p.kind == "audio"
    )


async def test_a_paused_producer_forwards_nothing_to_anyone(room: Room) -> None:
    await room.join("teacher", video=False, audio_mode="frames")
    await room.join("student", video=False, audio=False, decode="all")
    microphone = audio_of(room, "teacher")
    consumer = next(iter(room.participants["student"].consumers.values()))
    await wait_for(lambda: consumer.frames_forwarded > 10, what="audio forwarded")
    microphone.pause()
    forwarded = consumer.frames_forwarded
    withheld = microphone.frames_withheld
    await wait_for(lambda: microphone.frames_withheld >= withheld + 25, what="withheld frames")
    assert consumer.frames_forwarded == forwarded
    assert microphone.is_flowing() and microphone.stats().paused
    microphone.resume()
    await wait_for(lambda: consumer.frames_forwarded > forwarded + 10, what="audio again")


async def test_digital_silence_is_not_forwarded_but_still_counts_as_on(room: Room) -> None:
    await room.join("teacher", video=False, audio_mode="frames", audio_level=-127)
    await room.join("student", video=False, audio=False)
    microphone = audio_of(room, "teacher")
    await wait_for(lambda: microphone.frames_withheld >= 25, what="silent packets")
    consumer = next(iter(room.participants["student"].consumers.values()))
    assert consumer.frames_forwarded == 0 and microphone.frames == 0
    assert microphone.is_flowing()
    assert any(level == -127 for who, level, _ in room.events.audio_levels if who == "teacher")


async def test_a_paused_camera_restarts_at_a_keyframe(
    room: Room, publisher: LayeredPublisher
) -> None:
    await publisher.publish()
    sink = await watch(room, "student")
    high = next(p for p in room.router.producers.values() if p.layer == 1)
    high.pause()
    await wait_for(lambda: high.frames_withheld >= 5, what="withheld video")
    frames = sink.frames  # what was on its way when it paused has arrived by now
    await wait_for(lambda: high.frames_withheld >= 15, what="more withheld video")
    assert sink.frames == frames
    keyframes = sink.keyframes
    high.resume()
    await decodes_size(sink, HIGH)
    assert sink.keyframes > keyframes and sink.decode_errors == 0


async def test_a_layer_nobody_forwards_is_counted_in_c_not_brought_to_python(
    room: Room, publisher: LayeredPublisher
) -> None:
    require_extension(native_receive.AVAILABLE, "sfu._receive")
    await publisher.publish()
    producers = {p.layer: p for p in room.router.producers.values() if p.kind == "video"}
    high, low = producers[1], producers[0]
    # Alone in the room: nobody takes either layer, and both are only counted.
    await wait_for(lambda: high.handed_off and low.handed_off, timeout=5, what="hand-offs")
    sink = await watch(room, "student")
    consumer = camera_consumer(room, "student")
    assert consumer.current_layer == 1
    # The student forwards high (on its C fan-out); low has a consumer that does not
    # forward it, so it stays in C too.
    await wait_for(lambda: high.handed_off and low.handed_off, timeout=5, what="hand-offs")
    unused = low.stats().frames
    await decodes_size(sink, HIGH, frames=30)
    assert low.stats().frames >= unused + 20  # counted while nobody took it
    for layer, size in ((0, LOW), (1, HIGH), (0, LOW)):
        consumer.set_preferred_layer(layer)
        await decodes_size(sink, size, frames=10)
        await wait_for(lambda: high.handed_off and low.handed_off, timeout=5, what="hand-offs")
    assert consumer.layer_switches == 3
    assert sink.decode_errors == 0 and sink.losses == 0

"""VP8 temporal layers with real aiortc peers on loopback: a subscriber can be sent fewer
of them (a lower frame rate), more come back at the next base-layer frame, and what
it gets always has consecutive picture ids and decodes; other subscribers of the same
frames get them all. The publisher labels its frames like Chromium's ``L1T3``
(`scripts.synthpeer.temporal`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from scripts.support.loopback import SEND_CONFIGS, Room, wait_for
from scripts.synthpeer.media import EncodedVideoTrack, vp8_clip
from scripts.synthpeer.sink import StreamSink
from scripts.synthpeer.temporal import TemporalLayersPacker
from sfu import Consumer, Participant, Producer, TrackSpec, create_peer_connection
from sfu import set_local_description as server_style_description
from sfu.aiortc_adapter import testing as adapter_testing


class TemporalPublisher:
    """An aiortc client sharing a "screen" in three temporal layers."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.pc: RTCPeerConnection = create_peer_connection(room.config)
        self.track = EncodedVideoTrack(vp8_clip(40, 320, 180, keyframes_only=True))
        self.packer = TemporalLayersPacker()

    async def publish(self) -> Participant:
        participant = self.room.add_participant("teacher")
        transceiver = self.pc.addTransceiver(self.track, direction="sendonly")
        adapter_testing.use_packer(transceiver.sender, self.packer)
        adapter_testing.on_keyframe_request(transceiver.sender, self.track.request_keyframe)
        offer = await self.pc.createOffer()
        sdp = await server_style_description(self.pc, offer, self.room.config)
        answer = await participant.publish(sdp, {str(transceiver.mid): TrackSpec("screen")})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return participant

    def sent(self, max_layer: int) -> int:
        """Frames packed so far of temporal layers 0 to `max_layer`."""
        return sum(1 for t in self.packer.temporal_layers if t <= max_layer)


@pytest.fixture(params=sorted(SEND_CONFIGS))
async def room(request: pytest.FixtureRequest) -> AsyncIterator[Room]:
    room = Room(SEND_CONFIGS[request.param])
    try:
        yield room
    finally:
        await room.close()


@pytest.fixture
async def publisher(room: Room) -> AsyncIterator[TemporalPublisher]:
    publisher = TemporalPublisher(room)
    try:
        yield publisher
    finally:
        await publisher.pc.close()


def screen_producer(room: Room) -> Producer:
    return next(p for p in room.router.producers.values() if p.source == "screen")


def screen_consumer(room: Room, viewer: str) -> Consumer:
    consumers = room.participants[viewer].consumers.values()
    return next(c for c in consumers if c.source == "screen")


async def watch(room: Room, name: str) -> StreamSink:
    await room.join(name, video=False, audio=False, decode="all")
    await wait_for(
        lambda: (sink := room.sink(name, "teacher", "video")) is not None and sink.decoded >= 5,
        timeout=10,
        what="decoded video frames",
    )
    sink = room.sink(name, "teacher", "video")
    assert sink is not None
    return sink


async def received_while(
    publisher: TemporalPublisher, sink: StreamSink, max_layer: int, frames: int = 24
) -> tuple[int, int]:
    """(frames of layers up to `max_layer` the publisher sent, frames `sink` got) over a
    window of `frames` sent frames, started at a base-layer frame."""
    packed = publisher.packer.temporal_layers
    await wait_for(lambda: packed[-1] == 0, timeout=5, what="a base-layer frame")
    await wait_for(lambda: packed[-1] != 0, timeout=5, what="the frame after it")
    start_sent, start_got, start_len = publisher.sent(max_layer), sink.frames, len(packed)
    await wait_for(lambda: len(packed) >= start_len + frames, timeout=10, what="frames sent")
    end_sent = publisher.sent(max_layer)
    await wait_for(
        lambda: sink.frames >= start_got + end_sent - start_sent, timeout=2, what="in flight"
    )
    return end_sent - start_sent, sink.frames - start_got


async def test_a_subscriber_gets_fewer_temporal_layers_and_everything_still_decodes(
    room: Room, publisher: TemporalPublisher
) -> None:
    await publisher.publish()
    thinned = await watch(room, "weak")
    full = await watch(room, "strong")
    producer = screen_producer(room)
    await wait_for(lambda: producer.temporal_layers == 3, timeout=5, what="three layers seen")
    # The window in which the third layer first shows may have started before it (a loaded
    # machine sends fewer frames per window): the next ones measure the steady pattern.
    await wait_for(
        lambda: producer.temporal_share(0)[1] == pytest.approx(0.25, abs=0.1),
        timeout=5,
        what="the base layer's share of the frames at a quarter",
    )
    bits, _ = producer.temporal_share(0)
    assert 0 < bits < 1
    consumer = screen_consumer(room, "weak")

    for max_layer in (0, 1, None, 0):
        consumer.set_max_temporal_layer(max_layer)
        assert consumer.max_temporal_layer == max_layer
        sent, got = await received_while(publisher, thinned, 2 if max_layer is None else max_layer)
        # A frame sent just before the window may land inside it.
        assert sent <= got <= sent + 1, (max_layer, sent, got)

    assert consumer.frames_thinned > 0 and consumer.stats().frames_thinned > 0
    assert consumer.stats().max_temporal_layer == 0
    for sink in (thinned, full):
        assert sink.picture_id_gaps == 0 and sink.decode_errors == 0 and sink.losses == 0
    assert screen_consumer(room, "strong").frames_thinned == 0
    assert full.frames > thinned.frames


async def test_an_unlabelled_stream_is_never_thinned(room: Room) -> None:
    await room.join("teacher", audio=False)
    viewer = await watch(room, "student")
    consumer = next(c for c in room.participants["student"].consumers.values() if c.kind == "video")
    consumer.set_max_temporal_layer(0)
    start = viewer.frames
    await wait_for(lambda: viewer.frames >= start + 15, timeout=5, what="frames at full rate")
    assert consumer.frames_thinned == 0 and viewer.picture_id_gaps == 0

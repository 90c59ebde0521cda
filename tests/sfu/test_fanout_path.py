"""The C fan-out (`sfu.fanout`) with real aiortc peers on loopback: consumers in steady
state are sent to in one call per frame, and move to the per-consumer path and back
as they pause and resume, switch layers or change routes, without a frame sent twice
or skipped (the decoders see consecutive pictures and picture ids), with NACKs still
answered from the shared history and counters exact."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from scripts.support.loopback import CLIP_FRAMES, SEND_CONFIGS, Room, wait_for
from scripts.synthpeer.sink import StreamSink
from sfu import Consumer, Producer, native_send
from sfu.consumer import DirectOutput
from sfu.direct_send import DirectRtpSender, Route
from tests.native_extensions import require_extension
from tests.sfu.test_layers import HIGH, LOW, LayeredPublisher, camera_consumer, decodes_size
from tests.sfu.test_layers import watch as watch_camera
from tests.sfu.test_temporal_layers import (
    TemporalPublisher,
    received_while,
    screen_consumer,
    screen_producer,
)
from tests.sfu.test_temporal_layers import watch as watch_screen


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_extension(native_send.AVAILABLE, "sfu._fanout")


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    room = Room(SEND_CONFIGS["native"])
    try:
        yield room
    finally:
        await room.close()


@pytest.fixture
async def publisher(room: Room) -> AsyncIterator[LayeredPublisher]:
    publisher = LayeredPublisher(room, "teacher")
    try:
        yield publisher
    finally:
        await publisher.close()


@pytest.fixture
async def screen(room: Room) -> AsyncIterator[TemporalPublisher]:
    publisher = TemporalPublisher(room)
    try:
        yield publisher
    finally:
        await publisher.pc.close()


def on_fanout(consumer: Consumer, producer: Producer | None = None) -> bool:
    producer = producer or consumer.producer
    member = consumer in producer._native
    assert member != (consumer in producer._fanout)  # one path or the other
    return member


def sender(consumer: Consumer) -> DirectRtpSender:
    output = consumer._output
    assert isinstance(output, DirectOutput)
    return output.rtp


def video_consumer(room: Room, viewer: str) -> Consumer:
    return next(c for c in room.participants[viewer].consumers.values() if c.kind == "video")


def intact(sink: StreamSink) -> None:
    assert sink.decode_errors == 0 and sink.losses == 0
    assert sink.picture_id_gaps == 0
    assert sink.order_violations(CLIP_FRAMES) == 0, sink.indices


async def decoding(room: Room, *names: str) -> list[StreamSink]:
    def sinks() -> list[StreamSink | None]:
        return [room.sink(name, "teacher", "video") for name in names]

    await wait_for(
        lambda: all(s is not None and s.decoded >= 20 for s in sinks()), timeout=10, what="video"
    )
    return [s for s in sinks() if s is not None]


async def more_frames(sink: StreamSink, count: int = 15) -> None:
    start = sink.decoded
    await wait_for(lambda: sink.decoded >= start + count, timeout=10, what=f"{count} more frames")


def counts_agree(consumer: Consumer) -> None:
    """The consumer's stats are its stream's counters, which sender reports carry."""
    rtp = sender(consumer)
    stats = consumer.stats()
    assert stats.packets_forwarded == rtp.packets_sent == rtp.state.packets_sent
    assert stats.bytes_forwarded == rtp.state.octets
    report = rtp.sender_report(time.time())
    assert report is not None
    assert (report.packets, report.octets) == (rtp.packets_sent, rtp.state.octets)


async def test_pause_resume_and_close_move_consumers_off_and_back(room: Room) -> None:
    await room.join("teacher", audio=False)
    for name in ("s1", "s2"):
        await room.join(name, video=False, audio=False)
    sinks = await decoding(room, "s1", "s2")
    one, two = video_consumer(room, "s1"), video_consumer(room, "s2")
    assert on_fanout(one) and on_fanout(two)
    assert one.frames_forwarded > 0
    counts_agree(one)

    one.pause()
    assert not on_fanout(one) and on_fanout(two)
    forwarded = one.frames_forwarded
    await more_frames(sinks[1])
    assert one.frames_forwarded == forwarded

    one.resume()  # from the next keyframe: on the per-consumer path until then
    assert not on_fanout(one)
    await more_frames(sinks[0], 30)
    assert on_fanout(one) and one.frames_forwarded > forwarded
    for sink in sinks:
        intact(sink)
    counts_agree(one)
    counts_agree(two)

    producer = two.producer
    two.close()
    assert two not in producer._native and two not in producer._fanout
    await more_frames(sinks[0])
    assert on_fanout(one)


async def test_layer_switches_move_the_consumer_between_producers(
    room: Room, publisher: LayeredPublisher
) -> None:
    await publisher.publish()
    sink = await watch_camera(room, "student")
    consumer = camera_consumer(room, "student")
    high, low = consumer.producers[1], consumer.producers[0]
    await more_frames(sink, 5)
    assert on_fanout(consumer, high) and not on_fanout(consumer, low)
    for switch in range(6):
        target, size = (low, LOW) if switch % 2 == 0 else (high, HIGH)
        other = high if target is low else low
        consumer.set_preferred_layer(target.layer)
        # Pending until the target's keyframe: the current layer goes on in Python.
        assert not on_fanout(consumer, other) and not on_fanout(consumer, target)
        await decodes_size(sink, size, frames=5)
        assert on_fanout(consumer, target) and not on_fanout(consumer, other)
    assert consumer.layer_switches == 6
    assert sink.decode_errors == 0 and sink.losses == 0 and sink.picture_id_gaps == 0
    counts_agree(consumer)


async def test_temporal_thinning_on_the_fanout(room: Room, screen: TemporalPublisher) -> None:
    await screen.publish()
    thinned, full = await watch_screen(room, "weak"), await watch_screen(room, "strong")
    consumer = screen_consumer(room, "weak")
    producer = screen_producer(room)
    assert on_fanout(consumer) and on_fanout(screen_consumer(room, "strong"))
    consumer.set_max_temporal_layer(0)
    assert on_fanout(consumer)  # thinning is the fan-out's own work
    # A frame sent just before a window may land inside it (see test_temporal_layers).
    sent, got = await received_while(screen, thinned, 0)
    assert sent <= got <= sent + 1  # every base-layer frame, nothing above
    assert consumer.frames_thinned > 0 and consumer.stats().frames_thinned > 0
    consumer.set_max_temporal_layer(None)
    sent, got = await received_while(screen, thinned, 2)
    assert sent <= got <= sent + 1
    assert thinned.picture_id_gaps == 0 and thinned.decode_errors == 0
    assert full.picture_id_gaps == 0 and screen_consumer(room, "strong").frames_thinned == 0
    assert producer.temporal_layers == 3


async def test_a_per_consumer_route_next_to_fanout_consumers(room: Room) -> None:
    """A route without the native send (what a relayed pair gets) takes the Python path;
    the stream stays one (sequence numbers, picture ids, counters), both ways."""
    await room.join("teacher", audio=False)
    for name in ("native", "python"):
        await room.join(name, video=False, audio=False)
    sinks = await decoding(room, "native", "python")
    native, python = video_consumer(room, "native"), video_consumer(room, "python")
    rtp = sender(python)
    route = rtp.live_route()
    assert route is not None and route.native is not None and on_fanout(python)
    pair = SimpleNamespace(
        remote_addr=route.address, protocol=SimpleNamespace(transport=route.transport)
    )
    rtp._set_route(Route(route.dtls, pair, native=False))
    assert not on_fanout(python) and on_fanout(native) and not rtp.fans_out
    packets = rtp.packets_sent
    await more_frames(sinks[1], 40)  # past route checks, which keep the Python route
    assert not on_fanout(python) and rtp.packets_sent > packets
    rtp._set_route(Route(route.dtls, pair))  # native again
    assert on_fanout(python)
    await more_frames(sinks[1], 20)
    for sink in sinks:
        intact(sink)
    counts_agree(python)
    counts_agree(native)


async def test_nacks_are_answered_from_what_the_fanout_sent(room: Room) -> None:
    await room.join("teacher", audio=False)
    client = await room.join("student", video=False, audio=False, loss_every=40)
    sink = room.sink("student", "teacher", "video")
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 90,
        timeout=10,
        what="3 s of video through a lossy link",
    )
    sink = room.sink("student", "teacher", "video")
    assert sink is not None
    consumer = video_consumer(room, "student")
    assert on_fanout(consumer)
    assert client.dropped >= 5
    stats = consumer.stats()
    assert stats.nacks_received > 0 and stats.retransmissions > 0
    assert sink.losses == 0 and sink.decode_errors == 0
    assert sink.order_violations(CLIP_FRAMES) == 0

"""Router.consume and Consumer.pause/resume with real aiortc peers on loopback: the
router forwards exactly what it is told to, a paused consumer's subscriber receives
nothing (without a new offer), and resuming starts again at a keyframe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scripts.support.loopback import CLIP_FRAMES, Room, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import EncodedVideoTrack
from sfu import Closed, Consumer, InvalidState, Participant, Producer, Router, RouterId


@pytest.fixture
async def bare_room() -> AsyncIterator[Room]:
    """A room whose participants consume only what a test passes to `router.consume`."""
    room = Room(auto_consume=False)
    try:
        yield room
    finally:
        await room.close()


def video_of(room: Room, name: str) -> Producer:
    return next(
        p for p in room.router.producers.values() if p.participant_id == name and p.kind == "video"
    )


async def watching(room: Room, name: str) -> tuple[Participant, MediaClient]:
    """A participant who publishes nothing, with a client that answers its offers."""
    await room.join(name, video=False, audio=False)
    return room.participants[name], room.clients[name]


async def test_a_participant_who_consumes_nothing_gets_no_offer(bare_room: Room) -> None:
    room = bare_room
    await room.join("teacher")
    ignored, _ = await watching(room, "ignored")
    viewer, _ = await watching(room, "viewer")
    for producer in list(room.router.producers.values()):
        room.router.consume(viewer, producer)
    await wait_for(lambda: room.decoded("viewer", "teacher") >= 5, timeout=10)
    # The viewer's offer was built, answered and carried media; the other got none.
    assert room.events.offers.keys() == {"viewer"}
    assert ignored.consumers == {} and ignored.subscribe_pc is None
    assert ignored.subscription.offers_sent == 0
    assert {c.producer.participant_id for c in viewer.consumers.values()} == {"teacher"}


async def test_a_paused_consumer_forwards_nothing_and_resume_starts_at_a_keyframe(
    room: Room,
) -> None:
    teacher = await room.join("teacher")
    student, client = await watching(room, "student")
    await wait_for(lambda: room.decoded("student", "teacher") >= 10, timeout=10)
    producer = video_of(room, "teacher")
    consumer = student.consumer_of(producer)
    assert consumer is not None and not consumer.paused
    offers = student.subscription.offers_sent

    consumer.pause()
    consumer.pause()  # idempotent
    assert consumer.paused and consumer.stats().paused and consumer.active
    forwarded, dropped = consumer.frames_forwarded, consumer.frames_dropped
    sink = room.sink("student", "teacher", "video")
    audio = room.sink("student", "teacher", "audio")
    assert sink is not None and audio is not None
    await wait_for(lambda: sink.frames == forwarded, what="frames in flight at the pause")
    frames, decoded, audio_frames = producer.frames, len(sink.indices), audio.frames
    await wait_for(lambda: producer.frames >= frames + 30, what="a second of video meanwhile")
    assert consumer.frames_forwarded == forwarded and sink.frames == forwarded
    assert consumer.frames_dropped == dropped  # paused frames are not "dropped"
    assert audio.frames > audio_frames  # the other consumer of the same subscriber goes on

    track = teacher.video_track
    assert isinstance(track, EncodedVideoTrack)
    requests = track.keyframe_requests
    consumer.resume()
    consumer.resume()  # idempotent
    assert not consumer.paused and not consumer.stats().paused
    await wait_for(lambda: len(sink.indices) > decoded + 5, timeout=5, what="video again")
    assert track.keyframe_requests > requests  # resume asked the publisher for a keyframe
    # The first frame after the pause is that keyframe: the publisher's loop restarted.
    assert sink.indices[decoded] == 0
    assert sink.decode_errors == 0 and sink.order_violations(CLIP_FRAMES) == 0
    # All without renegotiating.
    assert student.subscription.offers_sent == offers
    assert client.subscribe_offers == offers


async def test_a_consumer_made_paused_is_negotiated_but_silent_until_resumed(
    bare_room: Room,
) -> None:
    room = bare_room
    await room.join("teacher", audio=False)
    viewer, _ = await watching(room, "viewer")
    producer = video_of(room, "teacher")
    consumer = room.router.consume(viewer, producer, paused=True, app_data={"why": "test"})
    assert consumer.paused and consumer.app_data == {"why": "test"}
    await wait_for(lambda: consumer.active, what="the m-section answered")
    assert viewer.subscription.phase == "stable"
    frames = producer.frames
    await wait_for(lambda: producer.frames >= frames + 30, what="a second of video")
    assert consumer.frames_forwarded == 0 and room.decoded("viewer", "teacher") == 0
    consumer.resume()
    await wait_for(lambda: room.decoded("viewer", "teacher") >= 5, timeout=5)
    sink = room.sink("viewer", "teacher", "video")
    assert sink is not None and sink.frames_before_keyframe == 0


async def test_consuming_twice_gives_the_same_consumer(bare_room: Room) -> None:
    room = bare_room
    await room.join("teacher", audio=False)
    viewer, _ = await watching(room, "viewer")
    producer = video_of(room, "teacher")
    first = room.router.consume(viewer, producer)
    assert room.router.consume(viewer, producer, paused=True) is first
    assert not first.paused and list(viewer.consumers.values()) == [first]
    first.close()
    # Once closed, consuming again makes a new consumer.
    second = room.router.consume(viewer, producer)
    assert second is not first and list(viewer.consumers.values()) == [second]


async def test_consume_refuses_closed_foreign_and_own_objects(bare_room: Room) -> None:
    room = bare_room
    await room.join("teacher", audio=False)
    viewer, _ = await watching(room, "viewer")
    producer = video_of(room, "teacher")
    teacher = room.participants["teacher"]
    with pytest.raises(InvalidState, match="its own producer"):
        room.router.consume(teacher, producer)

    other = Router(RouterId("other"), room.config)
    try:
        stranger = other.add_participant(viewer.id)
        with pytest.raises(InvalidState, match="not in router"):
            room.router.consume(stranger, producer)
        with pytest.raises(InvalidState, match="not in router"):
            other.consume(stranger, producer)
    finally:
        await other.close()
    with pytest.raises(Closed):
        other.consume(viewer, producer)

    consumer = room.router.consume(viewer, producer)
    await room.leave("teacher")  # closes the producer, and so its consumers
    assert producer.closed and consumer.closed
    with pytest.raises(Closed):
        room.router.consume(viewer, producer)
    with pytest.raises(Closed):
        consumer.pause()
    with pytest.raises(Closed):
        consumer.resume()
    consumer.close()  # still idempotent

    await room.join("teacher2", audio=False)
    await viewer.close()
    with pytest.raises(Closed):
        room.router.consume(viewer, video_of(room, "teacher2"))


async def test_a_paused_consumer_shows_in_stats_and_closing_it_renegotiates(
    bare_room: Room,
) -> None:
    room = bare_room
    await room.join("teacher", audio=False)
    viewer, _ = await watching(room, "viewer")
    consumer: Consumer = room.router.consume(viewer, video_of(room, "teacher"), paused=True)
    await wait_for(lambda: consumer.active, what="the m-section answered")
    (stats,) = viewer.stats().consumers
    assert stats.paused and stats.state == "active"
    offers = viewer.subscription.offers_sent
    consumer.close()
    await wait_for(lambda: viewer.subscription.offers_sent > offers, what="the m-section going")
    assert viewer.consumers == {}

"""Publishers renegotiate tracks away and back; H.264 is forwarded as is."""

from __future__ import annotations

from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.media import RenderedVideoTrack


async def test_a_publisher_that_stops_and_restarts_video_is_followed_by_subscribers(
    room: Room,
) -> None:
    teacher = await room.join("teacher")
    await room.join("student", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.decoded >= 5
    )
    participant = room.participants["teacher"]

    teacher.set_video_direction("inactive")
    await teacher.publish_answer(await participant.publish(await teacher.publish_offer()))
    assert [p.kind for p in participant.producers.values()] == ["audio"]
    await wait_for(lambda: room.sink("student", "teacher", "video") is None, what="video removed")
    assert room.sink("student", "teacher", "audio") is not None

    teacher.set_video_direction("sendonly")
    await teacher.publish_answer(await participant.publish(await teacher.publish_offer()))
    assert sorted(p.kind for p in participant.producers.values()) == ["audio", "video"]
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.decoded >= 5,
        what="video back",
    )
    sink = room.sink("student", "teacher", "video")
    assert sink is not None and sink.frames_before_keyframe == 0 and sink.decode_errors == 0
    assert room.participants["student"].subscription.slot_count == 2  # the m-section was reused
    assert not room.answer_errors


async def test_h264_is_forwarded_without_transcoding(room: Room) -> None:
    await room.join("safari", audio=False, video_track=RenderedVideoTrack(30), video_codec="H264")
    await room.join("viewer", video=False, audio=False)
    producer = next(iter(room.router.producers.values()))
    assert producer.codec.name == "H264"
    await wait_for(
        lambda: (s := room.sink("viewer", "safari", "video")) is not None and s.decoded >= 10,
        timeout=8,
        what="decoded H.264",
    )
    sink = room.sink("viewer", "safari", "video")
    assert sink is not None and sink.codec == "H264"
    assert sink.sizes == {(640, 360)} and sink.decode_errors == 0
    assert sink.frames_before_keyframe == 0
    assert all(index is not None for index in sink.indices)

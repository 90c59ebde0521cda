"""A participant joining a running room sees video promptly, starting at a keyframe."""

from __future__ import annotations

import time

from scripts.support.loopback import Room, wait_for
from scripts.synthpeer.media import EncodedVideoTrack


async def test_a_late_joiner_gets_a_keyframe_within_a_second_and_nothing_before_it(
    room: Room,
) -> None:
    teacher = await room.join("teacher")
    await room.join("early", video=False, audio=False)
    producer = next(p for p in room.router.producers.values() if p.kind == "video")
    # Well past the clip's own keyframe (the next one is 5 s away), so only a
    # requested keyframe can start the late joiner's stream within a second.
    await wait_for(lambda: producer.frames >= 45, what="1.5 s of video")
    track = teacher.video_track
    assert isinstance(track, EncodedVideoTrack)
    requests_before = track.keyframe_requests

    joined = time.monotonic()
    await room.join("late", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("late", "teacher", "video")) is not None and s.decoded >= 1,
        timeout=3,
        what="the late joiner's first decoded frame",
    )
    sink = room.sink("late", "teacher", "video")
    assert sink is not None and sink.first_frame_at is not None
    assert sink.first_frame_at - joined < 1.0
    assert sink.frames_before_keyframe == 0  # the very first frame forwarded was a keyframe
    assert sink.indices[0] == 0  # the publisher restarted its loop: a requested keyframe
    assert track.keyframe_requests > requests_before
    early = room.sink("early", "teacher", "video")
    assert early is not None and early.decode_errors == 0 and early.order_violations(150) == 0


async def test_subscriber_keyframe_requests_are_coalesced_into_rate_limited_upstream_plis(
    room: Room,
) -> None:
    teacher = await room.join("teacher")
    await room.join("student", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 10,
        what="video at the student",
    )
    producer = next(p for p in room.router.producers.values() if p.kind == "video")
    consumer = next(iter(producer.consumers.values()))
    sent_before = producer.stats().plis_sent
    started = time.monotonic()
    for _ in range(50):  # a burst of subscriber PLIs
        consumer._keyframe_requested()
    await wait_for(lambda: producer.stats().plis_sent > sent_before, what="an upstream PLI")
    await wait_for(lambda: not producer._keyframes.pending, what="the keyframe")
    elapsed = time.monotonic() - started
    # one PLI, repeated at most every 0.25 s until the keyframe came (typically ~50 ms)
    assert producer.stats().plis_sent - sent_before <= 1 + int(elapsed / 0.25)
    assert consumer.keyframe_requests == 50
    track = teacher.video_track
    assert isinstance(track, EncodedVideoTrack) and track.keyframe_requests >= 1

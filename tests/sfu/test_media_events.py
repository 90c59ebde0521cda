"""Events the attendance layer builds on: presence, audio levels, camera-on, stats."""

from __future__ import annotations

import statistics

from scripts.support.loopback import LOOPBACK, Room, wait_for
from sfu import MediaConfig


async def test_audio_levels_from_the_header_extension_are_reported_per_producer(room: Room) -> None:
    await room.join("loud", video=False, audio_mode="frames", audio_level=-10)
    await room.join("quiet", video=False, audio_mode="frames", audio_level=-45)

    def levels(name: str) -> list[int]:
        return [level for who, level, _ in room.events.audio_levels if who == name]

    await wait_for(lambda: len(levels("loud")) >= 5 and len(levels("quiet")) >= 5, what="levels")
    assert abs(statistics.median(levels("loud")) - -10) <= 2
    assert abs(statistics.median(levels("quiet")) - -45) <= 2


async def test_presence_camera_on_and_stats_are_reported(room: Room) -> None:
    await room.join("teacher")
    await room.join("student", video=False)
    await wait_for(
        lambda: (
            ("connected", "teacher") in room.events.log
            and ("connected", "student") in room.events.log
        ),
        what="both connected",
    )
    video = next(p for p in room.router.producers.values() if p.kind == "video")
    await wait_for(lambda: video.is_flowing(0.2), what="video flowing")
    await wait_for(lambda: room.router.stats().forwarded_frames > 0, what="frames forwarded")
    stats = room.router.stats()
    teacher = next(p for p in stats.participants if p.participant_id == "teacher")
    assert teacher.connected and teacher.publish_state == "connected"
    video_stats = next(p for p in teacher.producers if p.kind == "video")
    assert video_stats.codec == "VP8" and video_stats.frames > 0 and video_stats.consumers == 1
    assert video_stats.last_frame_age is not None and video_stats.last_frame_age < 1.0
    assert stats.forwarded_frames > 0
    student = next(p for p in stats.participants if p.participant_id == "student")
    assert [p.kind for p in student.producers] == ["audio"]


async def test_periodic_stats_are_pushed_to_the_listener() -> None:
    room = Room(MediaConfig(host_addresses=LOOPBACK.host_addresses, stats_interval=0.1))
    try:
        await room.join("teacher")
        await wait_for(lambda: len(room.events.stats) >= 2, what="two stats reports")
        assert room.events.stats[-1].router_id == room.router.id
    finally:
        await room.close()


async def test_a_client_that_vanishes_is_reported_disconnected_as_failed(room: Room) -> None:
    await room.join("teacher")
    student = await room.join("student")
    await wait_for(lambda: ("connected", "student") in room.events.log, what="student connected")
    await student.close()  # no goodbye through the participant: DTLS closes under it
    await wait_for(lambda: ("student", "failed") in room.events.disconnected, what="failure report")
    assert not room.participants["student"].connected
    await room.participants["student"].close()
    assert room.events.disconnected.count(("student", "failed")) == 1  # reported once

"""Selective forwarding through a real server with real aiortc peers: the subscribe
offer labels streams by user and source, `SUBSCRIPTION` turns what a subscriber gets
off and on (and `LAYERS` says so), a muted microphone is forwarded to nobody whatever
its client still sends, and every bad payload gets its exact `ERROR`."""

from __future__ import annotations

from typing import Any

from scripts.synthpeer.peer import SyntheticPeer

from .conftest import RunningServer
from .room_peers import PeerFactory, live_classroom, media_server, peers, settings, wait_for

__all__ = ["media_server", "peers", "settings"]  # fixtures


def decoded(peer: SyntheticPeer, user_id: str, kind: str) -> int:
    """Video frames or audio samples `peer` decoded from `user_id`."""
    assert peer.media is not None
    total = 0
    for stream in peer.media.streams_of(user_id):
        sink = stream.sinks.get(kind)
        if sink is not None:
            total += sink.decoded if kind == "video" else sink.samples_decoded
    return total


async def layers_event(peer: SyntheticPeer, user_id: str, camera: str) -> dict[str, Any]:
    """The `LAYERS` event that tells `peer` it gets `user_id`'s camera as `camera`."""
    assert peer.socket is not None
    return await peer.socket.next(
        "LAYERS", where=lambda data: data.get(user_id, {}).get("camera") == camera
    )


async def teacher_and_student(
    server: RunningServer, peers: PeerFactory, kind: str = "video"
) -> tuple[SyntheticPeer, SyntheticPeer]:
    """A publishing teacher and a student who only listens, once `kind` flows between."""
    room = await live_classroom(server)
    teacher = await peers(room.teacher)
    student = await peers(room.students[0], publish=False)
    await wait_for(lambda: decoded(student, teacher.user_id, kind) >= (5 if kind == "video" else 1))
    return teacher, student


async def test_streams_are_labelled_by_user_and_source(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    teacher, student = await teacher_and_student(media_server, peers)
    assert student.media is not None
    labels = {
        (s.participant_id, s.source, tuple(sorted(s.sinks)))
        for s in student.media.received.values()
    }
    assert labels == {
        (teacher.user_id, "microphone", ("audio",)),
        (teacher.user_id, "camera", ("video",)),
    }


async def test_a_subscription_turns_a_camera_off_and_on(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    teacher, student = await teacher_and_student(media_server, peers)
    assert student.socket is not None
    live = media_server.services.rooms.rooms[0]
    offers = live.members[student.user_id].participant.subscription.offers_sent
    await student.socket.send("SUBSCRIPTION", {teacher.user_id: {"camera": "off"}})
    told = await layers_event(student, teacher.user_id, "off")
    assert told == {teacher.user_id: {"camera": "off", "microphone": "on", "reason": "requested"}}
    # What was on its way has arrived once audio moved on; then no more video.
    audio = decoded(student, teacher.user_id, "audio")
    await wait_for(lambda: decoded(student, teacher.user_id, "audio") > audio + 9600)
    video = decoded(student, teacher.user_id, "video")
    audio = decoded(student, teacher.user_id, "audio")
    await wait_for(lambda: decoded(student, teacher.user_id, "audio") > audio + 19200)
    assert decoded(student, teacher.user_id, "video") == video
    await student.socket.send("SUBSCRIPTION", {teacher.user_id: {"camera": "high"}})
    await layers_event(student, teacher.user_id, "high")
    await wait_for(lambda: decoded(student, teacher.user_id, "video") >= video + 10)
    # No renegotiation either way: the m-section stayed.
    assert live.members[student.user_id].participant.subscription.offers_sent == offers


async def test_a_muted_microphone_is_forwarded_to_nobody(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    teacher, student = await teacher_and_student(media_server, peers, "audio")
    live = media_server.services.rooms.rooms[0]
    microphone = next(
        p
        for p in live.members[teacher.user_id].participant.producers.values()
        if p.source == "microphone"
    )
    consumer = next(iter(microphone.consumers.values()))
    # The client says it is muted but keeps sending: the server withholds it all.
    await teacher.set_media_state(audio=False, video=True)
    await wait_for(lambda: microphone.paused)
    withheld = microphone.frames_withheld
    await wait_for(lambda: microphone.frames_withheld > withheld + 5)
    packets, samples = consumer.sends().packets, decoded(student, teacher.user_id, "audio")
    await wait_for(lambda: microphone.frames_withheld > withheld + 30)
    assert consumer.sends().packets == packets
    assert decoded(student, teacher.user_id, "audio") == samples
    assert microphone.is_flowing()  # the client still sends: mic-on stays measurable
    await teacher.set_media_state(audio=True, video=True)
    await wait_for(lambda: decoded(student, teacher.user_id, "audio") > samples)


async def test_bad_subscriptions_and_track_names_get_their_error(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    socket = teacher.socket
    assert socket is not None
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            "SUBSCRIPTION",
            {"someone": "high"},
            "Invalid payload: SUBSCRIPTION maps user ids to {camera?, screen?, microphone?, fps?}",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"voice": "on"}},
            "Invalid payload: SUBSCRIPTION maps user ids to {camera?, screen?, microphone?, fps?}",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"camera": "medium"}},
            "Invalid payload: someone.camera must be 'high', 'low' or 'off'",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"screen": True}},
            "Invalid payload: someone.screen must be 'on' or 'off'",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"fps": 15}},
            "Invalid payload: someone.fps maps camera or screen to frames per second",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"fps": {"microphone": 15}}},
            "Invalid payload: someone.fps maps camera or screen to frames per second",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"fps": {"screen": 0}}},
            "Invalid payload: someone.fps.screen must be a number above 0, or null",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"fps": {"camera": True}}},
            "Invalid payload: someone.fps.camera must be a number above 0, or null",
        ),
        (
            "SUBSCRIPTION",
            {"someone": {"fps": {"camera": 1000}}},
            "Invalid payload: someone.fps.camera must be a number above 0, or null",
        ),
        (
            "SUBSCRIPTION",
            {f"user{i}": {"camera": "off"} for i in range(101)},
            "Invalid payload: SUBSCRIPTION names more than 100 users",
        ),
    ]
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    for tracks, message in (
        ([1], "Invalid payload: tracks must map mids to {source, layer?}"),
        (
            {"0": {"source": "webcam"}},
            "Invalid payload: tracks.0.source must be 'microphone', 'camera' or 'screen'",
        ),
        (
            {"0": {"source": "camera", "layer": "mid"}},
            "Invalid payload: tracks.0.layer must be 'high' or 'low'",
        ),
        (
            {"0": {"source": "screen", "layer": "low"}},
            "Invalid payload: tracks.0: only a camera has layers",
        ),
    ):
        cases.append(("WEBRTC_OFFER", {"pc": "publish", "offer": offer, "tracks": tracks}, message))
    for event, data, message in cases:
        await socket.send(event, data)
        error = await socket.error_for(event)
        assert error == {"message": message, "event": event}, (event, data)
    # Nothing was lost: the teacher's media is still up and the room alive.
    assert teacher.errors == []
    assert len(media_server.services.rooms.rooms[0].members) == 1


async def test_a_subscription_needs_the_room(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    student = await peers(room.students[0], join=False)
    socket = await student.connect()
    await socket.send("SUBSCRIPTION", {})
    error = await socket.error_for("SUBSCRIPTION")
    assert error["message"] == "Not in the room; send JOIN_ROOM first"

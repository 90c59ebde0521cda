"""The class WebSocket's media signalling with real aiortc peers against a real server."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from api.config import Settings
from scripts.synthpeer.api_client import ApiFailure
from scripts.synthpeer.peer import SyntheticPeer

from .conftest import RunningServer, ServerFactory
from .room_peers import PeerFactory, live_classroom, media_server, peers, settings, wait_for

__all__ = ["media_server", "peers", "settings"]  # fixtures


def _decoded_video_from(peer: SyntheticPeer, user_id: str) -> int:
    assert peer.media is not None
    total = 0
    for stream in peer.media.streams_of(user_id):
        sink = stream.sinks.get("video")
        if sink is not None and (640, 360) in sink.sizes:
            total += sink.decoded
    return total


def _decoded_audio_from(peer: SyntheticPeer, user_id: str) -> int:
    assert peer.media is not None
    return sum(
        stream.sinks["audio"].samples_decoded
        for stream in peer.media.streams_of(user_id)
        if "audio" in stream.sinks
    )


async def test_a_teacher_and_two_students_each_receive_the_other_two(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    first = await peers(room.students[0])
    second = await peers(room.students[1])
    everyone = [teacher, first, second]

    def everyone_hears_everyone() -> bool:
        return all(
            _decoded_video_from(peer, other.user_id) >= 15
            and _decoded_audio_from(peer, other.user_id) > 0
            for peer in everyone
            for other in everyone
            if other is not peer
        )

    await wait_for(everyone_hears_everyone)
    for peer in everyone:
        assert peer.errors == []
        assert peer.media is not None
        assert peer.media.active_participants() == {o.user_id for o in everyone if o is not peer}
        for other in everyone:
            if other is not peer:
                for stream in peer.media.streams_of(other.user_id):
                    video = stream.sinks.get("video")
                    if video is None:
                        assert stream.source == "microphone"
                        continue
                    assert stream.source == "camera"
                    assert video.decode_errors == 0 and video.sizes == {(640, 360)}
                    assert video.frames_before_keyframe == 0


async def test_room_joined_lists_participants_and_peers_hear_joins_and_leaves(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    assert teacher.room["participants"] == [] and teacher.room["iceServers"] == []
    session = await media_server.api.call(
        "GET", f"/class/{room.class_id}/room", token=room.teacher.token
    )
    assert teacher.room["roomId"] == session["activeRoomId"]
    assert teacher.room["sessionId"] == session["sessionId"]
    assert teacher.room["classId"] == room.class_id
    assert teacher.room["userId"] == room.teacher.id
    student = await peers(room.students[0])
    assert [p["userId"] for p in student.room["participants"]] == [room.teacher.id]
    assert teacher.socket is not None
    joined = await teacher.socket.next("PEER_JOINED")
    assert joined == {
        "userId": room.students[0].id,
        "name": room.students[0].name,
        "role": "student",
    }
    await wait_for(lambda: _decoded_video_from(teacher, student.user_id) > 0)

    await student.leave()
    assert await teacher.socket.next("PEER_LEFT") == {"userId": room.students[0].id}
    assert teacher.media is not None
    await wait_for(
        lambda: (
            student.user_id not in teacher.media.active_participants() if teacher.media else False
        )
    )


async def test_a_closed_socket_removes_the_participant_for_everyone(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    student = await peers(room.students[0])
    await wait_for(lambda: _decoded_video_from(teacher, student.user_id) > 0)
    await student.close()
    assert teacher.socket is not None
    assert await teacher.socket.next("PEER_LEFT") == {"userId": room.students[0].id}
    await wait_for(
        lambda: (
            teacher.media is not None and student.user_id not in teacher.media.active_participants()
        )
    )
    assert not media_server.services.rooms.rooms[0].members.get(room.students[0].id)


async def test_a_late_joiner_gets_a_keyframe_promptly(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    await asyncio.sleep(2.0)  # the teacher's stream is well past its first keyframe
    late = await peers(room.students[0], publish=False)
    await wait_for(lambda: _decoded_video_from(late, teacher.user_id) > 0, timeout=5)
    assert late.media is not None
    sink = next(
        stream.sinks["video"]
        for stream in late.media.streams_of(teacher.user_id)
        if "video" in stream.sinks
    )
    assert sink.first_keyframe_at is not None
    elapsed = sink.first_keyframe_at - late.joined_at
    print(f"late joiner: first keyframe {elapsed * 1000:.0f} ms after ROOM_JOINED")
    assert elapsed < 1.5
    assert sink.frames_before_keyframe == 0


async def test_media_state_is_broadcast_to_the_others(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher, publish=False)
    student = await peers(room.students[0], publish=False)
    await student.set_media_state(audio=True, video=False)
    assert teacher.socket is not None and student.socket is not None
    assert await teacher.socket.next("MEDIA_STATE") == {
        "userId": room.students[0].id,
        "audio": True,
        "video": False,
    }
    assert [f for f in await student.socket.quiet(0.2) if f["event"] == "MEDIA_STATE"] == []
    late = await peers(room.students[1], publish=False)
    listed = {p["userId"]: p for p in late.room["participants"]}
    assert listed[room.students[0].id]["video"] is False


async def test_done_closes_the_rooms_media_after_the_broadcast(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    student = await peers(room.students[0])
    await wait_for(lambda: _decoded_video_from(student, teacher.user_id) > 0)
    assert teacher.socket is not None and student.socket is not None
    done = await teacher.socket.request("DONE", {}, "DONE")
    assert (await student.socket.next("DONE")) == done
    assert media_server.services.rooms.rooms == []
    assert student.media is not None and student.media.subscribe_pc is not None
    await wait_for(
        lambda: (
            student.media is not None
            and student.media.subscribe_pc is not None
            and student.media.subscribe_pc.connectionState in ("closed", "failed")
        ),
        timeout=20,
    )


async def test_signalling_errors_are_clear_and_leave_the_room_working(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    room = await live_classroom(media_server)
    teacher = await peers(room.teacher)
    student = await peers(room.students[0])
    await wait_for(lambda: _decoded_video_from(student, teacher.user_id) > 0)

    idle = await media_server.api.open_socket(room.students[1].token)
    fake_offer: dict[str, object] = {"pc": "publish", "offer": {"type": "offer", "sdp": "v=0\r\n"}}
    before_join: list[tuple[str, dict[str, object]]] = [
        ("WEBRTC_OFFER", fake_offer),
        ("WEBRTC_ANSWER", {"pc": "subscribe", "answer": {"type": "answer", "sdp": "v=0"}}),
        ("WEBRTC_ICE_CANDIDATE", {"pc": "publish", "candidate": None}),
        ("MEDIA_STATE", {"audio": True, "video": True}),
        ("LEAVE_ROOM", {}),
    ]
    for event, data in before_join:
        with pytest.raises(ApiFailure, match="Not in the room; send JOIN_ROOM first"):
            await idle.request(event, data, "NEVER")

    assert student.socket is not None
    bad_offers: list[tuple[dict[str, object], str]] = [
        (
            {"pc": "publish", "offer": {"type": "offer", "sdp": "garbage"}},
            "WEBRTC_OFFER: Invalid SDP: publish offer could not be applied: "
            "SDP must start with a v= line$",
        ),
        ({"pc": "publish", "offer": {"type": "answer", "sdp": "x"}}, "offer must be"),
        ({"pc": "publish"}, "offer must be"),
        ({"pc": "sideways", "offer": {"type": "offer", "sdp": "x"}}, "pc must be"),
        ({"pc": "subscribe", "offer": {"type": "offer", "sdp": "x"}}, "subscribe offers"),
    ]
    for data, expected in bad_offers:
        with pytest.raises(ApiFailure, match=expected):
            await student.socket.request("WEBRTC_OFFER", data, "NEVER")
    bad_candidates: list[tuple[dict[str, object], str]] = [
        (
            {"pc": "publish", "candidate": {"candidate": "bogus"}},
            "WEBRTC_ICE_CANDIDATE: Invalid ICE candidate: ",
        ),
        ({"pc": "publish", "candidate": 5}, "candidate must be"),
    ]
    for data, expected in bad_candidates:
        with pytest.raises(ApiFailure, match=expected):
            await student.socket.request("WEBRTC_ICE_CANDIDATE", data, "NEVER")
    with pytest.raises(ApiFailure, match="audio and video must be booleans"):
        await student.socket.request("MEDIA_STATE", {"audio": "yes"}, "NEVER")
    # Its subscribe offer was answered already: another answer is out of turn (409-style).
    with pytest.raises(
        ApiFailure, match="WEBRTC_ANSWER: Unexpected subscribe answer: no subscribe offer"
    ):
        await student.socket.request(
            "WEBRTC_ANSWER",
            {"pc": "subscribe", "answer": {"type": "answer", "sdp": "nonsense"}},
            "NEVER",
        )

    # The room is unharmed: media still flows both ways.
    before = _decoded_video_from(teacher, student.user_id)
    await wait_for(lambda: _decoded_video_from(teacher, student.user_id) > before + 10)
    await idle.close()


async def test_joining_needs_an_active_session_and_membership(media_server: RunningServer) -> None:
    room = await media_server.classroom(students=1)
    outsider = await media_server.account("student")
    other_teacher = await media_server.account("teacher")
    teacher = await media_server.api.open_socket(room.teacher.token)
    with pytest.raises(ApiFailure, match="No active attendance session"):
        await teacher.request("JOIN_ROOM", {}, "ROOM_JOINED")
    await media_server.api.start_session(room.teacher, room.class_id)
    for account, message in (
        (outsider, "Forbidden, not enrolled in class"),
        (other_teacher, "Forbidden, not class teacher"),
    ):
        ws = await media_server.api.open_socket(account.token, room.class_id)
        with pytest.raises(ApiFailure, match=message):
            await ws.request("JOIN_ROOM", {}, "ROOM_JOINED")
        await ws.close()
    joined = await teacher.request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert joined["classId"] == room.class_id
    await teacher.close()


async def test_a_full_room_refuses_the_next_participant(
    start_server: ServerFactory, settings: Settings
) -> None:
    server = await start_server(replace(settings, room_max_participants=2))
    room = await live_classroom(server, students=2)
    sockets = [await server.api.open_socket(a.token) for a in (room.teacher, *room.students)]
    await sockets[0].request("JOIN_ROOM", {}, "ROOM_JOINED")
    await sockets[1].request("JOIN_ROOM", {}, "ROOM_JOINED")
    with pytest.raises(ApiFailure, match=r"Room is full \(2 participants\)"):
        await sockets[2].request("JOIN_ROOM", {}, "ROOM_JOINED")
    await sockets[1].send("LEAVE_ROOM", {})
    assert (await sockets[0].next("PEER_LEFT"))["userId"] == room.students[0].id
    again = await sockets[2].request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert [p["userId"] for p in again["participants"]] == [room.teacher.id]
    for ws in sockets:
        await ws.close()

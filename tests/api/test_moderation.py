"""Teacher moderation over the class WebSocket, enforced by the server, on both stores:
mute, stop a camera or a screen share (forwarding stops at once, whatever the student's
client still sends), mute everyone, remove (media and room closed, rejoin refused until
readmitted, presence says why the interval ended), the class's allowStudentUnmute, every
decision in the record, every refusal its documented ``ERROR``."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import WS_TEACHER_EVENT_ONLY
from api.rooms.moderation import (
    BAD_ACTION,
    BAD_TARGET,
    MUTED_BY_TEACHER,
    NOT_A_STUDENT,
    NOT_HERE,
    NOT_SHARING,
    REMOVED,
    REMOVED_REASON,
)
from api.ws.room_events import NOT_JOINED
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

from .conftest import Classroom, RunningServer
from .room_peers import wait_for
from .test_chat import in_room, refusal


async def decisions(server: RunningServer, room: Classroom) -> list[tuple[str, str]]:
    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    events = await server.services.store.list_activity(live.session.id, ["moderation"])
    return [(e.user_id, e.data["action"]) for e in events]


def media(config: MediaConfig) -> MediaClient:
    return MediaClient(config, video=vp8_clip(), audio=ToneAudioTrack(), decode="none")


async def test_a_muted_student_is_forwarded_to_nobody(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = SyntheticPeer(server.api, room.teacher, media)
    ann = SyntheticPeer(server.api, room.students[0], media)
    bob = SyntheticPeer(server.api, room.students[1], media)
    try:
        for peer in (teacher, ann, bob):
            await peer.join()
        live = server.services.rooms.live_room(room.class_id)
        assert live is not None
        producers = live.members[ann.user_id].participant.producers.values()
        await wait_for(lambda: len(producers) == 2 and all(p.is_flowing() for p in producers))
        microphone = next(p for p in producers if p.source == "microphone")
        camera = next(p for p in producers if p.source == "camera")
        assert teacher.socket is not None and ann.socket is not None and bob.socket is not None

        await teacher.socket.send("MODERATE", {"userId": ann.user_id, "action": "mute"})
        told = await ann.socket.next("MODERATED")
        assert (told["action"], told["by"]) == ("mute", room.teacher.id)
        assert (await bob.socket.next("MEDIA_STATE", where=lambda m: m["userId"] == ann.user_id))[
            "audio"
        ] is False
        seen = await bob.socket.next("MODERATION")
        assert (seen["userId"], seen["action"]) == (ann.user_id, "mute")
        assert microphone.paused and not camera.paused  # the client still sends: not forwarded

        await teacher.socket.send("MODERATE", {"userId": ann.user_id, "action": "stop_camera"})
        await ann.socket.next("MODERATED", where=lambda m: m["action"] == "stop_camera")
        assert camera.paused

        # The class lets students unmute themselves (the default): the microphone is back.
        await ann.set_media_state(audio=True, video=True)
        await wait_for(lambda: not microphone.paused and not camera.paused)
        assert await decisions(server, room) == [
            (ann.user_id, "mute"),
            (ann.user_id, "stop_camera"),
        ]
    finally:
        for peer in (teacher, ann, bob):
            await peer.close()


async def test_where_the_class_says_so_a_muted_student_stays_muted(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=2)
    path = f"/class/{room.class_id}/settings"
    await server.api.call("PUT", path, token=room.teacher.token, body={"allowStudentUnmute": False})
    teacher, ann, bob = await in_room(server, room)
    await ann.send("MEDIA_STATE", {"audio": True, "video": False})
    await bob.send("MEDIA_STATE", {"audio": False, "video": False})
    for _ in range(2):
        await teacher.next("MEDIA_STATE")
    await teacher.send("MODERATE", {"all": True, "action": "mute"})
    await ann.next("MODERATED")
    assert await refusal(ann, "MEDIA_STATE", {"audio": True, "video": False}) == MUTED_BY_TEACHER
    # Bob's microphone was off: "mute everyone" had nothing to do for him, and he may unmute.
    await bob.send("MEDIA_STATE", {"audio": True, "video": False})
    assert (await teacher.next("MEDIA_STATE", where=lambda m: m["userId"] == bob_id(room)))[
        "audio"
    ] is True
    await teacher.send("MODERATE", {"userId": room.students[0].id, "action": "allow_unmute"})
    await ann.next("MODERATED", where=lambda m: m["action"] == "allow_unmute")
    await ann.send("MEDIA_STATE", {"audio": True, "video": False})
    await teacher.next(
        "MEDIA_STATE", where=lambda m: m["userId"] == room.students[0].id and m["audio"]
    )
    assert await decisions(server, room) == [
        (room.students[0].id, "mute"),
        (room.students[0].id, "allow_unmute"),
    ]


def bob_id(room: Classroom) -> str:
    return room.students[1].id


async def test_a_removed_student_cannot_rejoin_until_readmitted(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    teacher, ann, bob = await in_room(server, room)
    ann_id = room.students[0].id
    await teacher.send("MODERATE", {"userId": ann_id, "action": "remove"})
    assert (await ann.next("MODERATED"))["action"] == "remove"
    await bob.next("PEER_LEFT", where=lambda p: p["userId"] == ann_id)
    assert await refusal(ann, "CHAT", {"text": "let me in"}) == NOT_JOINED
    assert await refusal(ann, "JOIN_ROOM", {}) == REMOVED
    other = await server.api.open_socket(room.students[0].token, room.class_id)  # a new tab
    assert await refusal(other, "JOIN_ROOM", {}) == REMOVED

    await teacher.send("MODERATE", {"userId": ann_id, "action": "readmit"})
    seen = await bob.next("MODERATION", where=lambda m: m["action"] == "readmit")
    assert seen["userId"] == ann_id
    await ann.request("JOIN_ROOM", {}, "ROOM_JOINED")

    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    assert await decisions(server, room) == [(ann_id, "remove"), (ann_id, "readmit")]


async def test_removal_ends_the_presence_interval_with_its_reason(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = SyntheticPeer(server.api, room.teacher, media)
    ann = SyntheticPeer(server.api, room.students[0], media)
    try:
        for peer in (teacher, ann):
            await peer.join()
        await ann.wait_connected()
        live = server.services.rooms.live_room(room.class_id)
        assert live is not None
        await wait_for(lambda: live.members[ann.user_id].media_connected)
        assert teacher.socket is not None
        await teacher.socket.send("MODERATE", {"userId": ann.user_id, "action": "remove"})
        await teacher.socket.next("PEER_LEFT")
        await live.presence.drain()
        events = await server.services.store.list_presence_events(live.session.id, ann.user_id)
        assert [(e.kind, e.reason) for e in events][-1] == ("disconnected", REMOVED_REASON)
    finally:
        for peer in (teacher, ann):
            await peer.close()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"userId": "STUDENT", "action": "explode"}, BAD_ACTION),
        ({"userId": "STUDENT"}, BAD_ACTION),
        ({"action": "mute"}, BAD_TARGET),
        ({"all": True, "action": "remove"}, BAD_TARGET),
        ({"userId": "x", "action": "mute"}, BAD_TARGET),
        ({"userId": "TEACHER", "action": "mute"}, NOT_A_STUDENT),
        ({"userId": "0" * 24, "action": "remove"}, NOT_A_STUDENT),
        ({"userId": "ABSENT", "action": "mute"}, NOT_HERE),
        ({"userId": "STUDENT", "action": "stop_screen"}, NOT_SHARING),
    ],
)
async def test_moderation_refuses_what_it_cannot_do(
    server: RunningServer, data: dict[str, Any], expected: str
) -> None:
    room = await server.classroom(students=2)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token, room.class_id)
    student = await server.api.open_socket(room.students[0].token, room.class_id)
    for socket in (teacher, student):
        await socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
    ids = {"STUDENT": room.students[0].id, "ABSENT": room.students[1].id}
    ids["TEACHER"] = room.teacher.id
    body = {k: ids.get(v, v) if k == "userId" else v for k, v in data.items()}
    assert await refusal(teacher, "MODERATE", body) == expected
    assert await refusal(student, "MODERATE", body) == WS_TEACHER_EVENT_ONLY
    assert await decisions(server, room) == []


async def test_what_a_reloaded_page_needs_to_know_of_moderation(server: RunningServer) -> None:
    room = await server.classroom(students=2)
    teacher, ann, bob = await in_room(server, room)
    ann_id, bob_id = (s.id for s in room.students)
    await teacher.send("MODERATE", {"userId": ann_id, "action": "mute"})
    await ann.next("MODERATED")
    await teacher.send("MODERATE", {"userId": bob_id, "action": "remove"})
    await bob.next("MODERATED", where=lambda m: m["action"] == "remove")

    # The teacher's page reloads: who is removed and who is muted by the teacher.
    again = await server.api.open_socket(room.teacher.token, room.class_id)
    joined = await again.request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert {p["userId"]: p["mutedByTeacher"] for p in joined["participants"]} == {ann_id: True}
    roster = await again.request("ROSTER", {}, "ROSTER")
    assert roster["removed"] == [bob_id]
    assert {p["userId"]: p["mutedByTeacher"] for p in roster["participants"]} == {
        room.teacher.id: False,
        ann_id: True,
    }

    # The removed student is out of the room, but their sockets hear the readmit.
    other_tab = await server.api.open_socket(room.students[1].token, room.class_id)
    await again.send("MODERATE", {"userId": bob_id, "action": "readmit"})
    for socket in (bob, other_tab):
        told = await socket.next("MODERATED")
        assert (told["action"], told["by"]) == ("readmit", room.teacher.id)
    assert (await again.request("ROSTER", {}, "ROSTER"))["removed"] == []

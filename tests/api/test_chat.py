"""The room's chat over the class WebSocket, on both stores: a message is stored, then
heard by everyone in the room (the sender's copy is the acknowledgement); a late joiner
gets the history; the teacher deletes; every refusal is its documented ``ERROR``."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import NOT_CLASS_TEACHER, WS_TEACHER_EVENT_ONLY
from api.rooms.chat import (
    BAD_MESSAGE_ID,
    BAD_TEXT,
    CHAT_BURST,
    CHAT_MAX_CHARS,
    NO_SUCH_MESSAGE,
    TOO_FAST,
)
from api.rooms.polls import NO_SUCH_POLL
from api.ws.room_events import NOT_JOINED
from scripts.synthpeer.api_client import ApiFailure, ClassSocket
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

from .conftest import Classroom, RunningServer


async def in_room(server: RunningServer, room: Classroom) -> list[ClassSocket]:
    """The teacher's socket, then each student's, every one joined (no media)."""
    await server.api.start_session(room.teacher, room.class_id)
    sockets = []
    for account in [room.teacher, *room.students]:
        socket = await server.api.open_socket(account.token, room.class_id)
        await socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
        sockets.append(socket)
    return sockets


async def refusal(socket: ClassSocket, event: str, data: dict[str, Any]) -> str:
    await socket.send(event, data)
    return str((await socket.error_for(event))["message"])


async def test_a_message_is_stored_then_heard_by_everyone_in_the_room(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=2)
    teacher, ann, bob = await in_room(server, room)
    text = "<b>Is this</b> on the test? <img src=x onerror=alert(1)>\n  (asking for a friend)"
    await ann.send("CHAT", {"text": text})
    heard = [await socket.next("CHAT") for socket in (teacher, ann, bob)]
    assert heard[0] == heard[1] == heard[2]
    message = heard[0]
    assert set(message) == {"messageId", "userId", "name", "role", "text", "at"}
    assert message["text"] == text  # kept as sent: text is text, clients never parse it
    assert (message["userId"], message["role"]) == (room.students[0].id, "student")

    session = server.services.rooms.live_room(room.class_id)
    assert session is not None
    stored = await server.services.store.list_activity(session.session.id)
    assert [(e.id, e.kind, e.user_id, e.data["text"]) for e in stored] == [
        (message["messageId"], "chat", room.students[0].id, text)
    ]

    await teacher.send("CHAT", {"text": "Yes."})
    answer = await bob.next("CHAT")
    assert (answer["text"], answer["role"]) == ("Yes.", "teacher")


async def test_a_late_joiner_gets_the_history_without_deleted_messages(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=2)
    teacher, ann = (await in_room(server, room))[:2]
    sent = []
    for text in ("one", "two", "three"):
        await ann.send("CHAT", {"text": text})
        sent.append(await teacher.next("CHAT"))
    await teacher.send("CHAT_DELETE", {"messageId": sent[1]["messageId"]})
    deleted = await ann.next("CHAT_DELETED")
    assert set(deleted) == {"messageId", "by", "at"}
    assert (deleted["messageId"], deleted["by"]) == (sent[1]["messageId"], room.teacher.id)

    late = await server.api.open_socket(room.students[1].token, room.class_id)
    joined = await late.request("JOIN_ROOM", {}, "ROOM_JOINED")
    assert [m["text"] for m in joined["chat"]] == ["one", "three"]
    assert joined["chat"] == [sent[0], sent[2]]

    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    record = await server.services.store.list_activity(live.session.id)
    assert [e.kind for e in record] == ["chat", "chat", "chat", "chat_deleted"]
    assert record[3].data == {"messageId": sent[1]["messageId"]}
    assert record[3].user_id == room.teacher.id


async def test_what_the_teacher_may_delete(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    teacher, ann = await in_room(server, room)
    await ann.send("CHAT", {"text": "hello"})
    message = await teacher.next("CHAT")
    await ann.next("CHAT")
    mid = message["messageId"]
    assert await refusal(ann, "CHAT_DELETE", {"messageId": mid}) == WS_TEACHER_EVENT_ONLY
    assert await refusal(teacher, "CHAT_DELETE", {"messageId": "nope"}) == BAD_MESSAGE_ID
    assert await refusal(teacher, "CHAT_DELETE", {}) == BAD_MESSAGE_ID
    unknown = "0" * 24
    assert await refusal(teacher, "CHAT_DELETE", {"messageId": unknown}) == NO_SUCH_MESSAGE
    await teacher.send("CHAT_DELETE", {"messageId": mid})
    await ann.next("CHAT_DELETED")
    assert await refusal(teacher, "CHAT_DELETE", {"messageId": mid}) == NO_SUCH_MESSAGE


async def test_another_teacher_cannot_delete_in_a_class_not_theirs(
    server: RunningServer,
) -> None:
    # Only the class's teacher joins its room; one who is not is refused at the join.
    room = await server.classroom(students=0)
    await server.api.start_session(room.teacher, room.class_id)
    stranger = await server.account("teacher")
    socket = await server.api.open_socket(stranger.token, room.class_id)
    assert await refusal(socket, "JOIN_ROOM", {}) == NOT_CLASS_TEACHER
    assert await refusal(socket, "CHAT_DELETE", {"messageId": "0" * 24}) == NOT_JOINED


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"text": ""},
        {"text": " \n\t "},
        {"text": "x" * (CHAT_MAX_CHARS + 1)},
        {"text": 5},
        {"text": ["hi"]},
        {"text": None},
    ],
    ids=["missing", "empty", "whitespace", "too-long", "number", "list", "null"],
)
async def test_a_message_that_is_not_text_is_refused_and_not_stored(
    server: RunningServer, data: dict[str, Any]
) -> None:
    room = await server.classroom(students=1)
    teacher, ann = await in_room(server, room)
    assert await refusal(ann, "CHAT", data) == BAD_TEXT
    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    assert await server.services.store.list_activity(live.session.id) == []
    await ann.send("CHAT", {"text": "é" * CHAT_MAX_CHARS})  # characters, not bytes
    assert len((await teacher.next("CHAT"))["text"]) == CHAT_MAX_CHARS


async def test_chat_needs_the_room_and_a_slow_enough_sender(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    outside = await server.api.open_socket(room.students[0].token, room.class_id)
    assert await refusal(outside, "CHAT", {"text": "hi"}) == NOT_JOINED

    await outside.request("JOIN_ROOM", {}, "ROOM_JOINED")
    for index in range(CHAT_BURST + 1):
        await outside.send("CHAT", {"text": f"message {index}"})
    for index in range(CHAT_BURST):
        assert (await outside.next("CHAT"))["text"] == f"message {index}"
    assert (await outside.error_for("CHAT"))["message"] == TOO_FAST
    live = server.services.rooms.live_room(room.class_id)
    assert live is not None
    assert len(await server.services.store.list_activity(live.session.id)) == CHAT_BURST


async def test_synthetic_peers_use_every_classroom_tool_while_their_media_flows(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    student_id = room.students[0].id

    def media(config: MediaConfig) -> MediaClient:
        return MediaClient(config, video=vp8_clip(), audio=ToneAudioTrack(), decode="none")

    teacher = SyntheticPeer(server.api, room.teacher, media)
    student = SyntheticPeer(server.api, room.students[0], media)
    try:
        for peer in (teacher, student):
            await peer.join()
        await student.wait_connected()
        assert teacher.socket is not None and student.socket is not None
        said = await student.chat("Can you hear me?")
        assert said["userId"] == student_id
        assert (await teacher.socket.next("CHAT")) == said
        deleted = await teacher.delete_chat(said["messageId"])
        assert deleted["by"] == room.teacher.id
        assert (await student.socket.next("CHAT_DELETED"))["messageId"] == said["messageId"]

        await student.raise_hand()
        assert (await teacher.socket.next("HAND"))["raised"] is True
        lowered = await teacher.lower_hand(student_id)
        assert lowered["by"] == room.teacher.id

        poll = await teacher.start_poll("Ready?", ["yes", "no"])
        assert (await student.socket.next("POLL_STARTED"))["pollId"] == poll["pollId"]
        assert await student.vote(poll["pollId"], 1) == {"pollId": poll["pollId"], "option": 1}
        result = await teacher.end_poll(poll["pollId"])
        assert result["counts"] == [0, 1] and result["voters"] == 1

        moderation = await teacher.moderate(student_id, "mute")
        assert moderation["by"] == room.teacher.id
        assert (await student.socket.next("MODERATED"))["action"] == "mute"

        with pytest.raises(ApiFailure) as refused:
            await student.chat("")
        assert refused.value.error == BAD_TEXT
        with pytest.raises(ApiFailure) as not_teacher:
            await student.start_poll("Mine?", ["a", "b"])
        assert not_teacher.value.error == WS_TEACHER_EVENT_ONLY
        with pytest.raises(ApiFailure) as unknown:
            await student.vote("0" * 24, 0)
        assert unknown.value.error == NO_SUCH_POLL
    finally:
        for peer in (teacher, student):
            await peer.close()

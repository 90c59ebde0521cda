"""The room's classroom events: chat, raised hands, polls and moderation
(``docs/protocol.md``)."""

from __future__ import annotations

from typing import Any

from .. import access
from ..errors import InvalidRequest
from ..rooms.chat import chat_text, message_id_of
from ..rooms.hands import lower_target, raised_of
from ..rooms.manager import RoomManager
from ..rooms.member import RoomMember
from ..rooms.moderation import moderation_of
from ..rooms.polls import option_of, poll_id_of, poll_question
from ..rooms.room import ClassRoom
from ..services import Services
from .connection import EventSocket
from .events import EventRouter
from .room_events import NOT_JOINED


def add_classroom_events(router: EventRouter, services: Services, rooms: RoomManager) -> None:
    """Register ``CHAT``, ``CHAT_DELETE``, ``HAND``, ``HAND_LOWER`` and the polls'
    ``POLL_START``, ``POLL_VOTE`` and ``POLL_END``."""

    def joined(socket: EventSocket) -> tuple[ClassRoom, RoomMember]:
        found = rooms.member_of(socket)
        if found is None:
            raise InvalidRequest(NOT_JOINED)
        return found

    def teacher_of(socket: EventSocket) -> tuple[ClassRoom, RoomMember]:
        room, member = joined(socket)
        access.require_teacher_event(socket.user)
        access.require_owner(socket.user, room.cls)
        return room, member

    async def chat(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = joined(socket)
        await room.post_chat(member, chat_text(data))

    async def chat_delete(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = teacher_of(socket)
        await room.delete_chat(member, message_id_of(data))

    async def hand(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = joined(socket)
        await room.set_hand(member.user.id, raised_of(data), member)

    async def hand_lower(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = teacher_of(socket)
        target = lower_target(data)
        for user_id in room.hands.raised_users() if target is None else [target]:
            await room.set_hand(user_id, False, member)

    async def poll_start(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = teacher_of(socket)
        await room.start_poll(member, *poll_question(data))

    async def poll_vote(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = joined(socket)
        access.require_student_event(socket.user)
        await room.vote(member, poll_id_of(data), option_of(data))

    async def poll_end(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = teacher_of(socket)
        await room.end_poll(member, poll_id_of(data))

    async def moderate(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = teacher_of(socket)
        target, action = moderation_of(data)
        cls = await services.store.get_class(room.cls.id) or room.cls  # enrolment as now
        if target is not None:
            in_room = room.members.get(target)  # before: a removal takes them out
            joined_socket: object = in_room.socket if in_room is not None else None
            told = await room.moderate(member, target, action, cls)
            # The student's sockets outside the room hear it too (a readmit above all).
            for elsewhere in services.hub.sockets_of(target, cls.id):
                if elsewhere is not joined_socket:
                    elsewhere.send("MODERATED", told)
            return
        for other in list(room.members.values()):
            if other.user.role == "student" and other.audio:
                await room.moderate(member, other.user.id, "mute", cls)

    router.add("CHAT", chat)
    router.add("CHAT_DELETE", chat_delete)
    router.add("HAND", hand)
    router.add("HAND_LOWER", hand_lower)
    router.add("POLL_START", poll_start)
    router.add("POLL_VOTE", poll_vote)
    router.add("POLL_END", poll_end)
    router.add("MODERATE", moderate)

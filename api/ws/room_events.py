"""The media events of the class WebSocket: joining the room and WebRTC signalling."""

from __future__ import annotations

import time
from typing import Any

from sfu import InvalidSdp, TrackSpec
from sfu.sdp import media_sections

from .. import access
from ..errors import Forbidden, InvalidRequest, ServiceUnavailable
from ..media_errors import ICE_CANDIDATE, PUBLISH_OFFER, SUBSCRIBE_ANSWER
from ..models import ClassRecord
from ..overload import OVERLOADED
from ..rooms.manager import RoomManager
from ..rooms.member import RoomMember
from ..rooms.moderation import MUTED_BY_TEACHER
from ..rooms.room import ClassRoom
from ..services import Services
from ..store.outage import outage_error
from .class_context import resolve_class
from .connection import EventSocket
from .events import EventRouter
from .media_payloads import TOO_MANY_USERS, parse_subscription, parse_tracks

NOT_JOINED = "Not in the room; send JOIN_ROOM first"
BAD_PC = "Invalid payload: pc must be 'publish' or 'subscribe'"
BAD_DESCRIPTION = "Invalid payload: {field} must be {{type: '{kind}', sdp: string}}"
BAD_CANDIDATE = "Invalid payload: candidate must be {candidate, sdpMid, sdpMLineIndex} or null"
BAD_MEDIA_STATE = "Invalid payload: audio and video must be booleans"


def _description(data: dict[str, Any], field: str, kind: str) -> str:
    value = data.get(field)
    if (
        not isinstance(value, dict)
        or value.get("type") != kind
        or not isinstance(value.get("sdp"), str)
        or not value["sdp"].strip()
    ):  # no length cap of its own: WS_MAX_FRAME_BYTES bounds every frame
        raise InvalidRequest(BAD_DESCRIPTION.format(field=field, kind=kind))
    sdp: str = value["sdp"]
    return sdp


def _shares_a_screen(offer: str, tracks: dict[str, TrackSpec]) -> bool:
    """The offer sends a track it names ``screen`` (an inactive one shares nothing; an
    offer that cannot be parsed is refused by the media plane, in its words)."""
    screens = {mid for mid, spec in tracks.items() if spec.source == "screen"}
    if not screens:
        return False
    try:
        sections = media_sections(offer)
    except InvalidSdp:
        return False
    return any(
        s.mid in screens and s.port != 0 and s.direction in ("sendonly", "sendrecv")
        for s in sections
    )


def add_room_events(router: EventRouter, services: Services, rooms: RoomManager) -> None:
    """Register ``JOIN_ROOM``, ``LEAVE_ROOM``, ``WEBRTC_*``, ``MEDIA_STATE`` and
    ``SUBSCRIPTION``."""

    def joined(socket: EventSocket) -> tuple[ClassRoom, RoomMember]:
        found = rooms.member_of(socket)
        if found is None:
            raise InvalidRequest(NOT_JOINED)
        return found

    async def join_room(socket: EventSocket, data: dict[str, Any]) -> None:
        started = time.perf_counter()
        if services.load.overloaded:  # refused before anything of the join happens
            raise ServiceUnavailable(OVERLOADED)
        try:
            cls = await resolve_class(services, socket)
        except Exception as error:
            cls = _open_class(socket, error)
        await rooms.join(socket, cls)
        services.metrics.observe_join(started)

    def _open_class(socket: EventSocket, error: Exception) -> ClassRecord:
        """While the store is unavailable, the class a join is about is the open room's
        (its members as the room opened): the room goes on through a store outage."""
        if outage_error(error) is None:
            raise error
        live = [
            cls
            for cls in rooms.live_classes(socket.user)
            if socket.fixed_class_id in (None, cls.id)
        ]
        if len(live) != 1:
            raise error
        return live[0]

    async def leave_room(socket: EventSocket, data: dict[str, Any]) -> None:
        joined(socket)
        await rooms.leave(socket, reason="left")

    async def webrtc_offer(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = joined(socket)
        if data.get("pc") != "publish":
            raise InvalidRequest(
                BAD_PC
                if data.get("pc") != "subscribe"
                else "Invalid payload: the server makes the subscribe offers"
            )
        offer = _description(data, "offer", "offer")
        tracks = parse_tracks(data)
        if tracks and _shares_a_screen(offer, tracks):
            # The class as stored now: its settings may have changed since the room opened.
            cls = await services.store.get_class(room.cls.id) or room.cls
            room.check_screen_share(member, cls)
        answer = await member.participant.publish(offer, tracks)
        socket.send("WEBRTC_ANSWER", {"pc": "publish", "answer": {"type": "answer", "sdp": answer}})

    async def webrtc_answer(socket: EventSocket, data: dict[str, Any]) -> None:
        _, member = joined(socket)
        if data.get("pc") != "subscribe":
            raise InvalidRequest(
                BAD_PC
                if data.get("pc") != "publish"
                else "Invalid payload: the server answers publish offers"
            )
        answer = _description(data, "answer", "answer")
        await member.participant.subscribe_answer(answer)

    async def webrtc_ice_candidate(socket: EventSocket, data: dict[str, Any]) -> None:
        _, member = joined(socket)
        pc = data.get("pc")
        if pc not in ("publish", "subscribe"):
            raise InvalidRequest(BAD_PC)
        candidate = data.get("candidate")
        if candidate is not None and (
            not isinstance(candidate, dict) or not isinstance(candidate.get("candidate"), str)
        ):
            raise InvalidRequest(BAD_CANDIDATE)
        await member.participant.add_ice_candidate(pc, candidate)

    async def media_state(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = joined(socket)
        audio, video = data.get("audio"), data.get("video")
        if not isinstance(audio, bool) or not isinstance(video, bool):
            raise InvalidRequest(BAD_MEDIA_STATE)
        if audio and not member.audio and member.user.id in room.moderation.muted:
            cls = await services.store.get_class(room.cls.id) or room.cls
            if not room.may_unmute(member, cls):
                raise Forbidden(MUTED_BY_TEACHER)
            room.moderation.muted.discard(member.user.id)  # unmuted as the class allows
        room.set_media_state(member, audio, video)

    async def subscription(socket: EventSocket, data: dict[str, Any]) -> None:
        room, member = joined(socket)
        limit = 2 * room.max_participants
        update = parse_subscription(data, limit)
        if room.forwarding.users_named_after(member.participant, update.choices) > limit:
            raise InvalidRequest(TOO_MANY_USERS.format(limit=limit))
        room.subscribe(member, update.choices, update.frame_rates)

    async def roster(socket: EventSocket, data: dict[str, Any]) -> None:
        access.require_teacher_event(socket.user)
        cls = await resolve_class(services, socket)
        access.require_owner(socket.user, cls)
        session = await services.attendance.active_session(cls)
        room = rooms.room_for_session(session.id)
        socket.send("ROSTER", await services.roster.build(cls, session, room))

    router.add("JOIN_ROOM", join_room)
    router.add("ROSTER", roster)
    router.add("LEAVE_ROOM", leave_room)
    # The media plane's errors (sfu.SfuError) are answered by the router, in these words.
    router.add("WEBRTC_OFFER", webrtc_offer, media=PUBLISH_OFFER)
    router.add("WEBRTC_ANSWER", webrtc_answer, media=SUBSCRIBE_ANSWER)
    router.add("WEBRTC_ICE_CANDIDATE", webrtc_ice_candidate, media=ICE_CANDIDATE)
    router.add("MEDIA_STATE", media_state)
    router.add("SUBSCRIPTION", subscription)

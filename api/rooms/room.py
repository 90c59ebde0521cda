"""A class session's live room: its members and the ``sfu.Router`` that carries their media."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sfu import (
    MediaConfig,
    Participant,
    ParticipantId,
    Producer,
    Router,
    RouterId,
    RouterListener,
    StreamLabel,
)
from sfu.ids import TOP_LAYER

from ..errors import Conflict, Forbidden, InvalidRequest, error_event
from ..ids import UserId, new_id
from ..models import ActivityEvent, AttendanceSession, ClassRecord, User
from ..presence.tracker import PresenceTiming, PresenceTracker
from ..presence.writer import PresenceBacklog
from ..store import Store
from ..timeutil import iso_ms, utcnow
from .allocation import Choice
from .chat import RoomChat
from .forwarding_policy import SelectiveForwarding
from .hands import HandQueue, hand_payload
from .interfaces import RoomRecording, RoomSocket
from .member import RoomMember
from .moderation import (
    NOT_A_STUDENT,
    NOT_HERE,
    NOT_SHARING,
    REMOVED,
    REMOVED_REASON,
    Action,
    Moderation,
)
from .polls import RoomPolls

log = logging.getLogger(__name__)

ROOM_FULL = "Room is full ({limit} participants)"
SCREEN_SHARE_TEACHER_ONLY = "Forbidden, only the teacher may share a screen in this class"
SCREEN_SHARE_TAKEN = "Someone else is sharing a screen; wait until they stop"
REALLOCATE_SECONDS = 1.0
"""How often what each limited subscriber gets is reconsidered (rates move)."""
LIMIT_CHECKS_PER_REALLOCATION = 4
"""How often in between a changed downlink limit is acted on: a congested link should
get its lower layer within a receiver report's time, not a second later."""
MEDIA_FAILED = "Media connection failed; join the room again to retry"
ACTIVITY_DRAIN_SECONDS = 5.0


class ClassRoom(RouterListener):
    """Members of one active session and their media; sends room events to joined sockets.

    It is the router's listener: media-plane events become WebSocket events here, and
    nowhere else.
    """

    def __init__(
        self,
        cls: ClassRecord,
        session: AttendanceSession,
        media: MediaConfig,
        ice_servers: Callable[[User], list[dict[str, Any]]],
        max_participants: int,
        store: Store,
        timing: PresenceTiming,
        on_change: Callable[[ClassRoom], None],
        backlog: PresenceBacklog | None = None,
    ) -> None:
        self.cls = cls
        self.session = session
        self.ice_servers = ice_servers
        """Each joining user's ``iceServers`` (TURN credentials are per user)."""
        self.max_participants = max_participants
        self.router = Router(RouterId(session.room_id), media, self)
        self.forwarding = SelectiveForwarding(self.router, self._send_layers)
        self.screen_share: UserId | None = None
        """Whose screen share the room sees now (one at a time)."""
        self._reallocating: asyncio.Task[None] | None = None
        self.members: dict[str, RoomMember] = {}
        self._by_participant: dict[ParticipantId, RoomMember] = {}
        self.presence = PresenceTracker(
            store, session, self._media_probe, self._announce_speaker, timing, backlog
        )
        self._store = store
        self.chat = RoomChat(store, session)
        self.hands = HandQueue(session)
        self.polls = RoomPolls(store, session)
        self.moderation = Moderation(store, session)
        self._on_change = on_change
        self.lock = asyncio.Lock()
        self.closed = False
        self.recording: RoomRecording | None = None
        """Set by ``api.recordings.service`` while the room is being recorded."""
        self._background: set[asyncio.Task[None]] = set()
        self._activity_writes: set[asyncio.Task[None]] = set()
        """Activity written after the fact (a hand lowered by a leave): awaited by `close`."""
        self.last_roster: dict[str, Any] | None = None
        """The last ``ROSTER`` built from the store (``api.rooms.roster``): what one built
        while the store is unavailable takes statuses from."""

    # -- membership ---------------------------------------------------------
    def member_of(self, socket: RoomSocket) -> RoomMember | None:
        member = self.members.get(socket.user.id)
        return member if member is not None and member.socket is socket else None

    async def join(self, user: User, socket: RoomSocket) -> RoomMember:
        """Add ``user`` (replacing an earlier membership of theirs) and announce them."""
        await self.chat.restore()
        await self.polls.restore()
        await self.moderation.restore()
        if user.id in self.moderation.removed:
            raise Forbidden(REMOVED)
        previous = self.members.get(user.id)
        if previous is not None:
            await self.leave(previous, reason="rejoined")
        if len(self.members) >= self.max_participants:
            raise Conflict(ROOM_FULL.format(limit=self.max_participants))
        participant = self.router.add_participant(
            ParticipantId(new_id()), {"userId": user.id, "role": user.role}
        )
        member = RoomMember(user=user, socket=socket, participant=participant, joined_at=utcnow())
        self.members[user.id] = member
        self._by_participant[participant.id] = member
        socket.joined_session_id = self.session.id
        socket.send(
            "ROOM_JOINED",
            {
                "roomId": self.session.room_id,
                "sessionId": self.session.id,
                "classId": self.cls.id,
                "userId": user.id,
                "participants": [
                    self.participant_row(m) for m in self.members.values() if m is not member
                ],
                "iceServers": self.ice_servers(user),
                "recording": self.recording_state(),
                "screenShare": self.screen_share,
                "chat": self.chat.history(),
                "hands": self.hands.queue(),
                "poll": self._open_poll_for(user),
            },
        )
        # After ROOM_JOINED: what it consumes is told with LAYERS, a room event.
        self.forwarding.participant_joined(participant)
        self._start_reallocating()
        self.broadcast(
            "PEER_JOINED", {"userId": user.id, "name": user.name, "role": user.role}, skip=member
        )
        self._on_change(self)
        return member

    async def leave(self, member: RoomMember, *, reason: str) -> None:
        """Remove ``member``, close their media, and tell the others; idempotent."""
        if self.members.get(member.user.id) is not member:
            return
        del self.members[member.user.id]
        self._by_participant.pop(member.participant.id, None)
        if member.socket.joined_session_id == self.session.id:
            member.socket.joined_session_id = None
        log.info("user %s left room %s (%s)", member.user.id, self.session.room_id, reason)
        self.presence.disconnected(member.user.id, reason)
        self._lower_on_leave(member.user.id)
        self.forwarding.participant_left(member.participant)
        await member.participant.close()
        self.broadcast("PEER_LEFT", {"userId": member.user.id})
        self._on_change(self)

    # -- chat and hands ---------------------------------------------------------
    async def post_chat(self, member: RoomMember, text: str) -> None:
        """``CHAT``: stored, then heard by everyone in the room (the sender too)."""
        self.broadcast("CHAT", await self.chat.post(member.user, text))

    async def delete_chat(self, member: RoomMember, message_id: str) -> None:
        """``CHAT_DELETE`` (the caller checked that `member` is the class's teacher)."""
        self.broadcast("CHAT_DELETED", await self.chat.delete(member.user, message_id))

    async def set_hand(self, user_id: UserId, raised: bool, by: RoomMember) -> None:
        """Raise or lower `user_id`'s hand, stored, then told to the room if it changed."""
        event = self.hands.plan(user_id, raised, by.user.id)
        if event is None:
            return
        await self._store.append_activity(event)
        if self.hands.apply(event):
            self.broadcast("HAND", hand_payload(event))
            self._on_change(self)

    async def start_poll(
        self, member: RoomMember, question: str, options: list[str], anonymous: bool
    ) -> None:
        """``POLL_START`` (the caller checked that `member` is the class's teacher)."""
        poll = await self.polls.start(member.user, question, options, anonymous)
        self.broadcast("POLL_STARTED", poll.public())

    async def vote(self, member: RoomMember, poll_id: str, option: int) -> None:
        """``POLL_VOTE``: the voter is told, the teacher sees the counts."""
        poll = await self.polls.vote(member.user, poll_id, option)
        member.socket.send("POLL_VOTED", {"pollId": poll.id, "option": option})
        self._to_teachers("POLL_COUNTS", poll.tally())

    async def end_poll(self, member: RoomMember, poll_id: str) -> None:
        """``POLL_END``: everyone hears the result."""
        poll = await self.polls.end(member.user, poll_id)
        self.broadcast("POLL_RESULT", poll.result())

    def _open_poll_for(self, user: User) -> dict[str, Any] | None:
        poll = self.polls.current
        if poll is None:
            return None
        seen = {**poll.public(), "myVote": self.polls.my_vote(poll, user.id)}
        return seen | poll.tally() if user.role == "teacher" else seen

    async def moderate(
        self, by: RoomMember, target: UserId, action: Action, cls: ClassRecord
    ) -> dict[str, Any]:
        """``MODERATE`` (the caller checked that `by` is the class's teacher; `cls` is the
        class as stored now): stored, applied at once, told to the student and the room."""
        if target not in cls.student_ids:
            raise InvalidRequest(NOT_A_STUDENT)
        member = self.members.get(target)
        if member is None and action in ("mute", "stop_camera", "stop_screen"):
            raise Conflict(NOT_HERE)
        if action == "stop_screen" and self.screen_share != target:
            raise Conflict(NOT_SHARING)
        event = await self.moderation.record(target, action, by.user.id)
        told = {"action": action, "by": by.user.id, "at": iso_ms(event.at)}
        if member is not None:
            member.socket.send("MODERATED", told)
        self.broadcast("MODERATION", {"userId": target, **told}, skip=member)
        if member is None:
            return told
        if action == "mute":
            self.set_media_state(member, False, member.video)
        elif action == "stop_camera":
            self.set_media_state(member, member.audio, False)
        elif action == "stop_screen":
            self._screen_share_stopped(member)
        elif action == "remove":
            await self.leave(member, reason=REMOVED_REASON)
        return told

    def participant_row(self, member: RoomMember) -> dict[str, Any]:
        """A member as ``ROOM_JOINED.participants`` and ``ROSTER.participants`` show them."""
        return {**member.public(), "mutedByTeacher": member.user.id in self.moderation.muted}

    def may_unmute(self, member: RoomMember, cls: ClassRecord) -> bool:
        """Whether `member` may turn their microphone on now (`cls` as stored now)."""
        if member.user.id not in self.moderation.muted or cls.allow_student_unmute:
            return True
        return member.user.role == "teacher"

    def _screen_share_stopped(self, member: RoomMember) -> None:
        for producer in member.participant.producers.values():
            if producer.source == "screen":
                producer.pause()
        self.screen_share = None
        self.broadcast("SCREEN_SHARE", {"userId": member.user.id, "active": False})

    def _to_teachers(self, event: str, data: dict[str, Any]) -> None:
        for member in list(self.members.values()):
            if member.user.role == "teacher":
                member.socket.send(event, data)

    def _lower_on_leave(self, user_id: UserId) -> None:
        """A member who leaves lowers their hand; clients drop it on ``PEER_LEFT``, the
        record gets it soon (a leave never waits for the store)."""
        event = self.hands.plan(user_id, False, user_id)
        if event is None:
            return
        self.hands.apply(event)
        self._run_soon(self._record_quietly(event), self._activity_writes)

    async def _record_quietly(self, event: ActivityEvent) -> None:
        try:
            await self._store.append_activity(event)
        except Exception:
            log.warning(
                "room %s: %s of %s not recorded",
                self.session.room_id,
                event.kind,
                event.user_id,
                exc_info=True,
            )

    def _run_soon(
        self, work: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]] | None = None
    ) -> None:
        # Held until done: the loop keeps only a weak reference to a task.
        held = self._background if tasks is None else tasks
        task = asyncio.get_running_loop().create_task(work)
        held.add(task)
        task.add_done_callback(held.discard)

    def set_media_state(self, member: RoomMember, audio: bool, video: bool) -> None:
        member.audio, member.video = audio, video
        for producer in list(member.participant.producers.values()):
            self._enforce_mute(member, producer)
        self.broadcast(
            "MEDIA_STATE", {"userId": member.user.id, "audio": audio, "video": video}, skip=member
        )
        self._on_change(self)

    async def close_presence(self) -> None:
        """Write the last presence of everyone still here (the session is ending).

        What is buffered is written first, with the tracker still open: if the store is
        still unavailable this raises its 503/507 and the room goes on as it was, so the
        teacher can end the session again later with nothing lost."""
        if not self.presence.closed:
            await self.presence.drain()
        await self.presence.close("session ended")
        await self.presence.drain()

    async def close(self) -> None:
        """Close presence, every member's media and the router; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._reallocating is not None:
            self._reallocating.cancel()
            self._reallocating = None
        await self.presence.close("room closed")
        for member in list(self.members.values()):
            if member.socket.joined_session_id == self.session.id:
                member.socket.joined_session_id = None
        self.members.clear()
        self._by_participant.clear()
        if self.recording is not None:
            await self.recording.room_closed()
        if self._activity_writes:  # before the store may close
            await asyncio.wait(self._activity_writes, timeout=ACTIVITY_DRAIN_SECONDS)
        await self.router.close()

    def recording_state(self) -> dict[str, Any]:
        """``{active, recordingId}`` as ``RECORDING`` and ``ROOM_JOINED`` carry it."""
        if self.recording is None:
            return {"active": False, "recordingId": None}
        return self.recording.public()

    def broadcast(
        self, event: str, data: dict[str, Any], *, skip: RoomMember | None = None
    ) -> None:
        for member in list(self.members.values()):
            if member is not skip:
                member.socket.send(event, data)

    # -- media-plane events (RouterListener) --------------------------------
    def on_participant_connected(self, participant: Participant) -> None:
        member = self._by_participant.get(participant.id)
        if member is not None:
            member.media_connected = True
            self.presence.connected(member.user.id)
            self._on_change(self)

    def on_participant_disconnected(self, participant: Participant, reason: str) -> None:
        member = self._by_participant.get(participant.id)
        if member is None or reason != "failed":
            return
        member.media_connected = False
        member.socket.send("ERROR", error_event(MEDIA_FAILED))
        self._run_soon(self.leave(member, reason="media failed"))

    def on_subscribe_offer(
        self, participant: Participant, offer_sdp: str, streams: dict[str, StreamLabel]
    ) -> None:
        member = self._by_participant.get(participant.id)
        if member is None:
            return
        labelled = {
            stream_id: {"userId": owner.user.id, "source": label.source}
            for stream_id, label in streams.items()
            if (owner := self._by_participant.get(label.participant_id)) is not None
        }
        member.socket.send(
            "WEBRTC_OFFER",
            {
                "pc": "subscribe",
                "offer": {"type": "offer", "sdp": offer_sdp},
                "streams": labelled,
            },
        )

    def on_audio_level(self, producer: Producer, level_dbov: int, voice: bool) -> None:
        member = self._by_participant.get(producer.participant_id)
        if member is not None and member.audio:
            self.presence.audio_level(member.user.id, level_dbov)

    def _media_probe(self, user_id: UserId) -> tuple[bool, bool]:
        member = self.members.get(user_id)
        if member is None:
            return False, False
        flowing = {p.kind for p in member.participant.producers.values() if p.is_flowing()}
        return member.video and "video" in flowing, member.audio and "audio" in flowing

    def _announce_speaker(self, user_id: UserId) -> None:
        self.broadcast("ACTIVE_SPEAKER", {"userId": user_id})
        self.forwarding.speaker_changed(user_id)

    def on_producer_added(self, producer: Producer) -> None:
        log.debug("%r added in room %s", producer, self.session.room_id)
        member = self._by_participant.get(producer.participant_id)
        if member is not None:
            if producer.source == "screen":
                self._screen_share_started(member)
            self._enforce_mute(member, producer)
        self.forwarding.producer_added(producer)
        if self.recording is not None and producer.layer == TOP_LAYER:
            self.recording.add_producer(producer)

    def on_producer_removed(self, producer: Producer) -> None:
        self.forwarding.producer_removed(producer)
        if self.recording is not None:
            self.recording.remove_producer(producer)
        member = self._by_participant.get(producer.participant_id)
        sharing = member is not None and self.screen_share == member.user.id
        if producer.source == "screen" and member is not None and sharing:
            self.screen_share = None
            self.broadcast("SCREEN_SHARE", {"userId": member.user.id, "active": False})

    # -- selective forwarding --------------------------------------------------
    def subscribe(
        self,
        member: RoomMember,
        update: dict[str, dict[str, Choice]],
        frame_rates: dict[str, dict[str, float | None]] | None = None,
    ) -> None:
        """``SUBSCRIPTION``: merge what `member` wants to receive, and apply it."""
        self.forwarding.subscribe(member.participant, update, frame_rates)

    def check_screen_share(self, member: RoomMember, cls: ClassRecord) -> None:
        """Raise unless `member` may start sharing a screen now: the teacher always (their
        share takes over), a student if `cls` (the class as stored now) allows it and
        nobody else shares."""
        if member.user.role == "teacher":
            return
        if not cls.allow_student_screen_share:
            raise Forbidden(SCREEN_SHARE_TEACHER_ONLY)
        if self.screen_share is not None and self.screen_share != member.user.id:
            raise Conflict(SCREEN_SHARE_TAKEN)

    def _screen_share_started(self, member: RoomMember) -> None:
        previous = self.members.get(self.screen_share) if self.screen_share else None
        if previous is not None and previous is not member:
            for producer in previous.participant.producers.values():
                if producer.source == "screen":
                    producer.pause()  # taken over: forwarded to nobody from now on
        self.screen_share = member.user.id
        self.broadcast("SCREEN_SHARE", {"userId": member.user.id, "active": True})

    def _enforce_mute(self, member: RoomMember, producer: Producer) -> None:
        """What a member says is off (or a screen share taken over) is forwarded to
        nobody, whatever it still sends."""
        on = {
            "microphone": member.audio,
            "camera": member.video,
            "screen": self.screen_share == member.user.id,
        }[producer.source]
        if on:
            producer.resume()
        else:
            producer.pause()

    def _send_layers(self, participant: Participant, layers: dict[str, dict[str, Any]]) -> None:
        member = self._by_participant.get(participant.id)
        if member is not None:
            member.socket.send("LAYERS", layers)

    def _start_reallocating(self) -> None:
        if self._reallocating is None and not self.closed:
            self._reallocating = asyncio.get_running_loop().create_task(self._reallocate())

    async def _reallocate(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(REALLOCATE_SECONDS / LIMIT_CHECKS_PER_REALLOCATION)
            tick += 1
            try:
                self.forwarding.reallocate(changed_only=tick % LIMIT_CHECKS_PER_REALLOCATION != 0)
            except Exception:
                log.exception("reallocating room %s failed", self.session.room_id)

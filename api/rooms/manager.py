"""Every live room of the server, keyed by session; rooms open on first join."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sfu import MediaConfig, TrackCaps

from .. import access
from ..config import Settings
from ..errors import NO_ACTIVE_SESSION, Conflict
from ..models import AttendanceSession, ClassRecord, User
from ..presence.tracker import PresenceTiming
from ..presence.writer import RETRY_MAX_SECONDS, PresenceBacklog
from ..store import Store
from ..store.outage import outage_error
from ..turn import ice_servers_for, sfu_ice_servers
from .interfaces import RoomSocket
from .member import RoomMember
from .room import ClassRoom

log = logging.getLogger(__name__)


def media_config(settings: Settings) -> MediaConfig:
    """The media plane's settings from the server's.

    The server's own peer connections use STUN/TURN only with ``SFU_USE_ICE_SERVERS``
    (fresh TURN credentials for user ``sfu`` per connection, TURN over UDP preferred);
    otherwise they gather host candidates only, as before.
    """
    ice = settings.ice
    return MediaConfig(
        ice_servers=(),
        ice_servers_source=(lambda: sfu_ice_servers(ice)) if ice.sfu_use_ice_servers else None,
        host_addresses=settings.ice_addresses,
        announced_address=settings.ice_announced_address,
        port_range=ice.port_range,
        ice_connect_timeout=ice.connect_timeout_seconds,
        track_caps=TrackCaps(
            audio_bitrate=settings.media_audio_max_kbps * 1000,
            audio_packet_rate=settings.media_audio_max_packets,
            video_bitrate=settings.media_video_max_kbps * 1000,
            video_packet_rate=settings.media_video_max_packets,
        ),
    )


class RoomManager:
    """Opens a room for an active session on its first ``JOIN_ROOM`` and closes it when the
    session ends; finds the room a socket has joined."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._media = media_config(settings)
        self._timing = PresenceTiming(
            flush_interval=settings.presence_flush_seconds,
            talk_threshold_dbov=settings.talk_threshold_dbov,
            audio_level_interval=self._media.audio_level_interval,
            buffer_max=settings.presence_buffer_max,
            grace_seconds=settings.presence_grace_seconds,
            # One attempt that waits the store's whole timeout, and the backoff before it.
            drain_seconds=settings.store_timeout_seconds + RETRY_MAX_SECONDS,
        )
        self.presence_backlog = PresenceBacklog()
        """Every room's presence writes not stored yet (``GET /health``)."""
        self._rooms: dict[str, ClassRoom] = {}
        self.on_change: Callable[[ClassRoom], None] = lambda room: None
        """Called when a room's members, media or mute state change (roster updates)."""

    @property
    def media_paths(self) -> dict[str, str]:
        """The media plane's receive and send paths (``native`` or ``python``)."""
        return self._media.media_paths

    @property
    def rooms(self) -> list[ClassRoom]:
        return list(self._rooms.values())

    def counts(self) -> tuple[int, int]:
        """``(rooms, participants)`` open on this server now."""
        rooms = list(self._rooms.values())
        return len(rooms), sum(len(room.members) for room in rooms)

    def ice_servers(self, user: User) -> list[dict[str, Any]]:
        """``ROOM_JOINED.iceServers`` for `user`: STUN URLs and TURN URLs with a fresh
        credential of theirs (empty without STUN/TURN configuration)."""
        return ice_servers_for(self._settings.ice, user.id)

    async def join(self, socket: RoomSocket, cls: ClassRecord) -> RoomMember:
        """Join the class's live room (opened if needed); membership checked here."""
        if socket.user.role == "student":
            access.require_enrolled(socket.user, cls)
        else:
            access.require_owner(socket.user, cls)
        session = await self._active_session(cls)
        current = self.room_of(socket)
        if current is not None and current.session.id != session.id:
            await self.leave(socket, reason="joined another room")
        room = self._rooms.get(session.id)
        if room is None or room.closed:
            room = ClassRoom(
                cls,
                session,
                self._media,
                self.ice_servers,
                self._settings.room_max_participants,
                self._store,
                self._timing,
                lambda changed: self.on_change(changed),
                self.presence_backlog,
            )
            self._rooms[session.id] = room
            await room.presence.restore()
        async with room.lock:
            return await room.join(socket.user, socket)

    async def _active_session(self, cls: ClassRecord) -> AttendanceSession:
        """The class's active session; while the store is unavailable, the session of its
        open room (a room closes only after its session has ended, which needs the store)."""
        try:
            session = await self._store.get_active_session(cls.id)
        except Exception as error:
            room = self.live_room(cls.id)
            if room is None or outage_error(error) is None:
                raise
            log.warning("store unavailable: joining room %s as it is open", room.session.room_id)
            return room.session
        if session is None:
            raise Conflict(NO_ACTIVE_SESSION)
        return session

    def live_room(self, class_id: str) -> ClassRoom | None:
        """The class's open room, if any."""
        return next(
            (r for r in self._rooms.values() if r.cls.id == class_id and not r.closed), None
        )

    def live_classes(self, user: User) -> list[ClassRecord]:
        """The classes of `user` (enrolled or owned, as their rooms opened) with an open
        room: what an event can be about while the store cannot say."""
        return [r.cls for r in self._rooms.values() if not r.closed and r.cls.has_member(user.id)]

    def room_of(self, socket: RoomSocket) -> ClassRoom | None:
        if socket.joined_session_id is None:
            return None
        room = self._rooms.get(socket.joined_session_id)
        return room if room is not None and room.member_of(socket) else None

    def member_of(self, socket: RoomSocket) -> tuple[ClassRoom, RoomMember] | None:
        room = self.room_of(socket)
        member = room.member_of(socket) if room else None
        return (room, member) if room is not None and member is not None else None

    async def leave(self, socket: RoomSocket, *, reason: str) -> None:
        found = self.member_of(socket)
        if found is None:
            return
        room, member = found
        async with room.lock:
            await room.leave(member, reason=reason)

    def room_for_session(self, session_id: str) -> ClassRoom | None:
        return self._rooms.get(session_id)

    async def close_presence(self, session: AttendanceSession) -> None:
        """The session is ending: write its last presence before statuses are final."""
        room = self._rooms.get(session.id)
        if room is not None:
            await room.close_presence()

    async def close_session(self, session: AttendanceSession) -> None:
        """The session ended (after ``DONE`` was broadcast): close its room's media."""
        room = self._rooms.pop(session.id, None)
        if room is not None:
            await room.close()

    async def close_all(self) -> None:
        """The server stops: close every room, then wait (at most the drain time) for
        presence still buffered; what the store does not take by then is logged as lost."""
        for session_id in list(self._rooms):
            room = self._rooms.pop(session_id)
            await room.close()
        await self.presence_backlog.close(self._timing.drain_seconds)

"""The teacher's live roster: who is enrolled, who is in the room, and their status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..attendance import AttendanceService
from ..models import AttendanceSession, ClassRecord
from ..store import Store
from ..store.outage import outage_error
from ..timeutil import iso_ms
from .room import ClassRoom

log = logging.getLogger(__name__)

DEBOUNCE_SECONDS = 0.2


class RosterPublisher:
    """Builds ``ROSTER`` payloads and pushes them, debounced, to the teachers in a room."""

    def __init__(self, store: Store, attendance: AttendanceService) -> None:
        self._store = store
        self._attendance = attendance
        self._pending: dict[str, asyncio.Task[None]] = {}

    async def build(
        self, cls: ClassRecord, session: AttendanceSession, room: ClassRoom | None
    ) -> dict[str, Any]:
        members = room.members if room is not None else {}
        rows = await self._attendance.report(session, cls)
        students = []
        for row in rows:
            user = await self._store.get_user(row.student_id)
            member = members.get(row.student_id)
            students.append(
                {
                    "userId": row.student_id,
                    "name": user.name if user else "",
                    "inRoom": member is not None,
                    "connected": bool(member and member.media_connected),
                    "audio": member.audio if member else False,
                    "video": member.video if member else False,
                    "status": row.status,
                    "source": row.source,
                    "presenceSeconds": round(row.presence_seconds, 1),
                    "firstJoin": iso_ms(row.first_join) if row.first_join else None,
                }
            )
        roster = {
            "classId": cls.id,
            "sessionId": session.id,
            "startedAt": iso_ms(session.started_at),
            "students": students,
            "participants": _participants(room),
            "hands": room.hands.queue() if room is not None else [],
            "removed": sorted(room.moderation.removed) if room is not None else [],
        }
        if room is not None:
            room.last_roster = roster
        return roster

    def without_store(self, room: ClassRoom) -> dict[str, Any]:
        """The roster while the store is unavailable: who is in the room and their media
        as now, statuses and presence as the last roster built had them."""
        last = room.last_roster
        before = {row["userId"]: row for row in last["students"]} if last else {}
        students = []
        for student_id in room.cls.student_ids:
            member = room.members.get(student_id)
            row = before.get(student_id) or {
                "name": member.user.name if member else "",
                "status": None,
                "source": None,
                "presenceSeconds": 0.0,
                "firstJoin": None,
            }
            students.append(
                {
                    **row,
                    "userId": student_id,
                    "inRoom": member is not None,
                    "connected": bool(member and member.media_connected),
                    "audio": member.audio if member else False,
                    "video": member.video if member else False,
                }
            )
        return {
            "classId": room.cls.id,
            "sessionId": room.session.id,
            "startedAt": iso_ms(room.session.started_at),
            "students": students,
            "participants": _participants(room),
            "hands": room.hands.queue(),
            "removed": sorted(room.moderation.removed),
        }

    def schedule(self, room: ClassRoom) -> None:
        """Push a fresh roster to the room's teachers soon (coalescing bursts)."""
        if room.closed or room.session.id in self._pending:
            return
        self._pending[room.session.id] = asyncio.get_running_loop().create_task(
            self._push_later(room)
        )

    async def _push_later(self, room: ClassRoom) -> None:
        try:
            await asyncio.sleep(DEBOUNCE_SECONDS)
            teachers = [m for m in room.members.values() if m.user.role == "teacher"]
            if room.closed or not teachers:
                return
            try:
                cls = await self._store.get_class(room.cls.id) or room.cls
                roster = await self.build(cls, room.session, room)
            except Exception as error:
                if outage_error(error) is None:
                    raise
                roster = self.without_store(room)
            for member in teachers:
                member.socket.send("ROSTER", roster)
        except Exception:
            log.exception("could not publish the roster of session %s", room.session.id)
        finally:
            self._pending.pop(room.session.id, None)

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        self._pending.clear()


def _participants(room: ClassRoom | None) -> list[dict[str, Any]]:
    members = room.members.values() if room is not None else ()
    return [
        {**room.participant_row(member), "connected": member.media_connected}
        for member in members
        if room is not None
    ]

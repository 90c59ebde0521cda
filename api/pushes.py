"""Server-initiated events addressed to users rather than to a class: a new student for the
teachers' enrol lists, a new enrolment for that student, and a student's own attendance status.

Every push names its recipients by who may see the data: ``STUDENT_SIGNED_UP`` goes to
teachers only (as ``GET /students`` does), ``ENROLLED_IN_CLASS`` and ``MY_ATTENDANCE_UPDATED``
only to the student they are about. They reach every socket of the recipient, whatever class
it was opened for (or none), so a page hears them before it has a class open.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from .attendance import AttendanceService
from .models import AttendanceSession, ClassRecord, User
from .store import Store

log = logging.getLogger(__name__)

STUDENT_SIGNED_UP = "STUDENT_SIGNED_UP"
ENROLLED_IN_CLASS = "ENROLLED_IN_CLASS"
MY_ATTENDANCE_UPDATED = "MY_ATTENDANCE_UPDATED"
COALESCE_SECONDS = 0.2
"""Status changes arriving within this window are computed once (joins come in bursts)."""


class Recipient(Protocol):
    """An open socket as far as pushes care: whose it is, and how to send to it."""

    @property
    def user(self) -> User: ...

    def send(self, event: str, data: dict[str, Any]) -> None: ...


class SocketDirectory(Protocol):
    """Every open socket of the server, and the way to reach a user's or a role's sockets
    on every node (implemented by the socket hub)."""

    def all(self) -> Sequence[Recipient]: ...

    @property
    def clustered(self) -> bool:
        """Sockets may be on other nodes: who has none here may have some there."""

    def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None: ...

    def to_role(self, role: str, event: str, data: dict[str, Any]) -> None: ...


class UserPushes:
    """Sends the user-addressed events; status pushes are coalesced per class."""

    def __init__(self, sockets: SocketDirectory, store: Store, attendance: AttendanceService):
        self._sockets = sockets
        self._store = store
        self._attendance = attendance
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._in_room: dict[str, tuple[str, frozenset[str]]] = {}
        """Per class: (session id, students whose media is connected in its room now)."""
        self._pushed: dict[str, dict[str, str]] = {}
        """Per live session: the status each student was last told."""
        self._last_ended: dict[str, str] = {}
        """Per class: its latest ended session (no provisional status may follow its final)."""

    def _by_user(self) -> dict[str, list[Recipient]]:
        sockets: dict[str, list[Recipient]] = defaultdict(list)
        for socket in self._sockets.all():
            sockets[socket.user.id].append(socket)
        return sockets

    # -- accounts and enrolment ------------------------------------------------
    def user_signed_up(self, user: User) -> None:
        """A new student account (local sign-up or first Auth0 sign-in): tell every teacher."""
        if user.role != "student":
            return
        self._sockets.to_role("teacher", STUDENT_SIGNED_UP, {"student": user.summary()})

    async def student_enrolled(self, cls: ClassRecord, student_id: str) -> None:
        """Tell the student their class list has ``cls`` now (as ``GET /classes`` lists it)."""
        if not self._sockets.clustered and student_id not in self._by_user():
            return
        active = await self._store.get_active_session(cls.id)
        payload = {"class": {**cls.public(), "isActive": active is not None}}
        self._sockets.to_user(student_id, ENROLLED_IN_CLASS, payload)

    # -- a student's own status -------------------------------------------------
    def statuses_changed(
        self,
        cls: ClassRecord,
        session_id: str | None = None,
        in_room: Collection[str] | None = None,
    ) -> None:
        """Something that decides live statuses changed (a mark, someone's media in the
        room): recompute them soon and push each student the status that changed."""
        if session_id is not None and in_room is not None:
            self._in_room[cls.id] = (session_id, frozenset(in_room))
        if cls.id in self._running:
            self._again.add(cls.id)
            return
        self._running[cls.id] = asyncio.get_running_loop().create_task(
            self._push_statuses(cls.id), name=f"status-pushes-{cls.id}"
        )

    async def _push_statuses(self, class_id: str) -> None:
        try:
            while True:
                await asyncio.sleep(COALESCE_SECONDS)
                self._again.discard(class_id)
                await self._push_live_statuses(class_id)
                if class_id not in self._again:
                    return
        except Exception:
            log.exception("could not push the live statuses of class %s", class_id)
        finally:
            self._running.pop(class_id, None)
            self._again.discard(class_id)

    async def _push_live_statuses(self, class_id: str) -> None:
        cls = await self._store.get_class(class_id)
        session = await self._store.get_active_session(class_id)
        if cls is None or session is None:
            return
        sockets = self._by_user()
        if not self._sockets.clustered and not any(s in sockets for s in cls.student_ids):
            return
        rows = await self._attendance.report(session, cls)
        in_session, in_room = self._in_room.get(class_id, ("", frozenset()))
        if self._last_ended.get(class_id) == session.id:
            return
        pushed = self._pushed.setdefault(session.id, {})
        for row in rows:
            status, source = row.status, row.source
            # The room's view is ahead of the stored presence log (written by a queue), and
            # being in the room is what makes a student provisionally present.
            if status is None and in_session == session.id and row.student_id in in_room:
                status, source = "present", "presence"
            if status is None or pushed.get(row.student_id) == status:
                continue
            pushed[row.student_id] = status
            payload = _status_payload(cls.id, session.id, status, source, final=False)
            self._sockets.to_user(row.student_id, MY_ATTENDANCE_UPDATED, payload)

    async def session_ended(self, session: AttendanceSession) -> None:
        """After ``DONE``: every student hears the final status that was stored."""
        self._last_ended[session.class_id] = session.id
        self._pushed.pop(session.id, None)
        if self._in_room.get(session.class_id, ("",))[0] == session.id:
            del self._in_room[session.class_id]
        for mark in await self._store.list_marks(session.id):
            payload = _status_payload(
                session.class_id, session.id, mark.status, mark.source, final=True
            )
            self._sockets.to_user(mark.student_id, MY_ATTENDANCE_UPDATED, payload)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        self._running.clear()


def _status_payload(
    class_id: str, session_id: str, status: str, source: str | None, *, final: bool
) -> dict[str, Any]:
    return {
        "classId": class_id,
        "sessionId": session_id,
        "status": status,
        "source": source,
        "final": final,
    }

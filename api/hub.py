"""Every open class socket, indexed by user, and the fan-out of class broadcasts.

The hub knows sockets only through :class:`HubSocket` (``api.ws.connection.HubSocket``
is one), so the services that broadcast need nothing from ``api.ws``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .models import ClassRecord, User

SHUTDOWN_MESSAGE = b"server shutting down"


@dataclass(frozen=True)
class UserAddress:
    """Whom a push is for: one user's sockets, or those of every user with a role."""

    user_id: str | None = None
    role: str | None = None


class HubSocket(Protocol):
    """An open, authenticated class socket as the hub sees it."""

    @property
    def user(self) -> User: ...

    @property
    def fixed_class_id(self) -> str | None:
        """The ``classId`` the socket was opened with, if any."""

    def send(self, event: str, data: dict[str, Any]) -> None:
        """Queue one event; never blocks."""

    async def flush_and_close(self, code: int = 1000, message: bytes = b"") -> None:
        """Deliver what is queued, then close."""


class SocketHub:
    """Knows which sockets belong to which class and delivers broadcasts to them.

    A socket opened with ``classId`` belongs to that class; one opened without it
    belongs to whichever class of its user's is live, so it hears that class's events.
    """

    def __init__(self) -> None:
        self._by_user: dict[str, set[HubSocket]] = defaultdict(set)
        self.shutting_down = False
        """Set once the server stops: sockets that finish connecting after it close at once."""
        self.relay: Callable[[ClassRecord, str, dict[str, Any]], None] | None = None
        """In a cluster: hands every class broadcast to the other nodes too."""
        self.user_relay: Callable[[UserAddress, str, dict[str, Any]], None] | None = None
        """In a cluster: hands every push to a user (or a role) to the other nodes too."""

    async def close_all(self) -> None:
        """Close every socket, now and any that registers later (server shutdown)."""
        self.shutting_down = True
        for socket in self.all():
            await socket.flush_and_close(code=1001, message=SHUTDOWN_MESSAGE)

    def add(self, socket: HubSocket) -> None:
        self._by_user[socket.user.id].add(socket)

    def remove(self, socket: HubSocket) -> None:
        sockets = self._by_user.get(socket.user.id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_user[socket.user.id]

    def sockets_of(self, user_id: str, class_id: str) -> list[HubSocket]:
        """`user_id`'s open sockets that may hear about `class_id`."""
        return [s for s in self._by_user.get(user_id, ()) if s.fixed_class_id in (None, class_id)]

    def count_of(self, user_id: str) -> int:
        """The sockets `user_id` has open."""
        return len(self._by_user.get(user_id, ()))

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_user.values())

    def all(self) -> list[HubSocket]:
        return [socket for sockets in self._by_user.values() for socket in sockets]

    def sockets_of_class(self, cls: ClassRecord) -> list[HubSocket]:
        return self._sockets_of(cls.id, (cls.teacher_id, *cls.student_ids))

    def _sockets_of(self, class_id: str, members: Iterable[str]) -> list[HubSocket]:
        return [
            socket
            for member in members
            for socket in self._by_user.get(member, ())
            if socket.fixed_class_id in (None, class_id)
        ]

    def broadcast(self, cls: ClassRecord, event: str, data: dict[str, Any]) -> None:
        """To every socket of the class here, and (in a cluster) on every other node."""
        self.deliver(cls.id, (cls.teacher_id, *cls.student_ids), event, data)
        if self.relay is not None:
            self.relay(cls, event, data)

    @property
    def clustered(self) -> bool:
        """The users' sockets may be on other nodes too (a cluster)."""
        return self.user_relay is not None

    def to_user(self, user_id: str, event: str, data: dict[str, Any]) -> None:
        """To every socket of `user_id`, whatever its class, here and on every other node."""
        self.deliver_to(UserAddress(user_id=user_id), event, data)
        if self.user_relay is not None:
            self.user_relay(UserAddress(user_id=user_id), event, data)

    def to_role(self, role: str, event: str, data: dict[str, Any]) -> None:
        """To every socket of every user with `role`, here and on every other node."""
        self.deliver_to(UserAddress(role=role), event, data)
        if self.user_relay is not None:
            self.user_relay(UserAddress(role=role), event, data)

    def deliver_to(self, address: UserAddress, event: str, data: dict[str, Any]) -> None:
        """To the sockets `address` names on this node only."""
        if address.user_id is not None:
            sockets: Iterable[HubSocket] = self._by_user.get(address.user_id, ())
        else:
            sockets = [s for s in self.all() if s.user.role == address.role]
        for socket in list(sockets):
            socket.send(event, data)

    def deliver(
        self, class_id: str, members: Iterable[str], event: str, data: dict[str, Any]
    ) -> None:
        """To the sockets of `class_id`'s `members` on this node only."""
        for socket in self._sockets_of(class_id, members):
            socket.send(event, data)

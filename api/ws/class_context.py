"""Which class an event on a socket is about, resolved afresh for every event."""

from __future__ import annotations

from .. import access
from ..errors import NO_ACTIVE_SESSION, Conflict
from ..models import ClassRecord
from ..services import Services
from .connection import EventSocket

AMBIGUOUS_CLASS = "Several of your classes have an active session; reconnect with ?classId="


async def resolve_class(services: Services, socket: EventSocket) -> ClassRecord:
    """The ``classId`` the socket was opened with (membership checked), else the one
    class of the user's that has an active session."""
    user = socket.user
    if socket.fixed_class_id is not None:
        cls = await services.classes.get(socket.fixed_class_id)
        if user.role == "student":
            access.require_enrolled(user, cls)
        else:
            access.require_owner(user, cls)
        return cls
    live = [
        cls
        for cls in await services.classes.classes_of(user)
        if await services.store.get_active_session(cls.id) is not None
    ]
    if not live:
        raise Conflict(NO_ACTIVE_SESSION)
    if len(live) > 1:
        raise Conflict(AMBIGUOUS_CLASS)
    return live[0]

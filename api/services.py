"""The objects one server instance shares between its HTTP routes and its sockets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .attendance import AttendanceService
from .auth.keys import SigningKey
from .auth.passwords import PasswordWork
from .auth.throttle import AuthThrottle
from .auth.tokens import Authenticator, TokenIssuer
from .classes import ClassService
from .config import Settings
from .hub import SocketHub
from .metrics import ServerMetrics
from .overload import LoadWatch
from .presence.writer import PresenceBacklog
from .pushes import UserPushes
from .rate_limits import HeavyRoutes
from .recordings.service import RecordingService
from .rooms.manager import RoomManager
from .rooms.roster import RosterPublisher
from .store import Store

if TYPE_CHECKING:
    from .cluster.node import ClusterNode


@dataclass
class Services:
    """Built once per app in ``api.app`` and reached through ``app[SERVICES]``."""

    settings: Settings
    store: Store
    signing_key: SigningKey
    issuer: TokenIssuer
    authenticator: Authenticator
    classes: ClassService
    attendance: AttendanceService
    hub: SocketHub
    rooms: RoomManager
    roster: RosterPublisher
    metrics: ServerMetrics
    recordings: RecordingService
    pushes: UserPushes
    passwords: PasswordWork
    throttle: AuthThrottle
    load: LoadWatch
    heavy_routes: HeavyRoutes
    cluster: ClusterNode | None = None
    """This node of the cluster, in cluster mode (``REDIS_URL``)."""

    @property
    def presence_backlog(self) -> PresenceBacklog:
        """Presence writes waiting for the store, over every room (the rooms own it: they
        create the writers, and drain it when the server stops)."""
        return self.rooms.presence_backlog


SERVICES = web.AppKey("services", Services)

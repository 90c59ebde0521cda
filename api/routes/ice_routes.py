"""``GET /ice-servers``: STUN/TURN servers with fresh TURN credentials for the caller."""

from __future__ import annotations

from aiohttp import web

from ..turn import ice_servers_for
from .common import current_user, ok, services


async def ice_servers(request: web.Request) -> web.Response:
    """``{iceServers, ttl}``: ``ttl`` is how long the TURN credential stays valid for new
    allocations (seconds), ``null`` when no TURN server is configured."""
    user = await current_user(request)
    ice = services(request).settings.ice
    return ok(
        {
            "iceServers": ice_servers_for(ice, user.id),
            "ttl": ice.turn_ttl_seconds if ice.turn_enabled else None,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/ice-servers", ice_servers)

"""``GET /metrics``: the server's metrics in Prometheus text format, for operators only.

With ``METRICS_TOKEN`` set, the request needs ``Authorization: Bearer <token>``; without
one, only clients connecting from a loopback address may scrape. Behind a reverse proxy on
the same host every client looks local: set a token there.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from ..errors import (
    METRICS_LOOPBACK_ONLY,
    METRICS_UNAUTHORIZED,
    Forbidden,
    NotFound,
    Unauthorized,
)
from ..metrics import METRICS


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address (as ``request.remote`` gives it) is a loopback address."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _bearer(header: str | None) -> str:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def metrics(request: web.Request) -> web.Response:
    server_metrics = request.app[METRICS]
    if not server_metrics.enabled:
        raise NotFound("Not found")
    if server_metrics.token is not None:
        given = _bearer(request.headers.get("Authorization"))
        if not hmac.compare_digest(given.encode(), server_metrics.token.encode()):
            raise Unauthorized(METRICS_UNAUTHORIZED)
    elif not is_loopback(request.remote):
        raise Forbidden(METRICS_LOOPBACK_ONLY)
    body, content_type = server_metrics.render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)

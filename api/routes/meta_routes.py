"""Public documents: the token keys, the OpenAPI description, health, and the web page."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..errors import DRAINING, ServiceUnavailable
from ..openapi import openapi_document
from .common import ok, services

# An installed server has the page in the package (setup.py copies it); a checkout in web/.
_INSTALLED_WEB = Path(__file__).resolve().parents[1] / "web"
WEB_DIR = _INSTALLED_WEB if _INSTALLED_WEB.is_dir() else Path(__file__).resolve().parents[2] / "web"


async def jwks(request: web.Request) -> web.Response:
    return web.json_response(services(request).signing_key.jwks())


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def health(request: web.Request) -> web.Response:
    app = services(request)
    cluster = {} if app.cluster is None else app.cluster.health()
    return ok(
        {
            "status": "overloaded" if app.load.overloaded else "ok",
            "eventLoopLagMs": round(1000 * app.load.lag, 1),
            "store": app.settings.store_kind,
            "sockets": len(app.hub),
            "media": app.rooms.media_paths,
            "presenceBuffer": app.presence_backlog.snapshot(),
            **cluster,
        }
    )


async def ready(request: web.Request) -> web.Response:
    """Readiness (a load balancer's, Kubernetes'): not while the node drains (SIGTERM in a
    cluster), so new clients go to the other nodes while this one's rooms finish."""
    cluster = services(request).cluster
    if cluster is not None and cluster.draining:
        raise ServiceUnavailable(DRAINING)
    return ok({"ready": True})


async def index(request: web.Request) -> web.StreamResponse:
    page = "classroom.html" if (WEB_DIR / "classroom.html").exists() else "index.html"
    raise web.HTTPFound(f"/static/{page}")


def setup(app: web.Application) -> None:
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    if WEB_DIR.is_dir():
        app.router.add_get("/", index)
        app.router.add_static("/static/", WEB_DIR, show_index=False)

"""``/class/:id/recordings``: start/stop the live recording, list, download, delete."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..auth.tokens import token_from_header
from ..models import ClassRecord, User
from .common import current_user, ok, services

CONTENT_TYPES = {".mkv": "video/x-matroska", ".webm": "video/webm"}


async def _class(request: web.Request) -> ClassRecord:
    return await services(request).classes.get(request.match_info["id"])


async def _download_user(request: web.Request) -> User:
    """Downloads also take ``?token=``, so a ``<video src>`` can seek with Range requests."""
    query_token = request.query.get("token")
    if query_token and "Authorization" not in request.headers:
        token = token_from_header(query_token)
        return await services(request).authenticator.authenticate(token)
    return await current_user(request)


def _file(path: Path) -> web.FileResponse:
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
            "Content-Disposition": f'inline; filename="{path.name}"',
        },
    )


async def start(request: web.Request) -> web.Response:
    user = await current_user(request)
    services(request).heavy_routes.check(user.id)  # a recording's files, then its compose job
    recording = await services(request).recordings.start(user, await _class(request))
    return ok(recording.public(), status=201)


async def stop(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording = await services(request).recordings.stop(user, await _class(request))
    return ok(recording.public())


async def list_recordings(request: web.Request) -> web.Response:
    user = await current_user(request)
    found = await services(request).recordings.list(user, await _class(request))
    return ok([recording.public() for recording in found])


async def detail(request: web.Request) -> web.Response:
    user = await current_user(request)
    recording = await services(request).recordings.get(
        user, await _class(request), request.match_info["rid"]
    )
    return ok(recording.public())


async def download_file(request: web.Request) -> web.StreamResponse:
    user = await _download_user(request)
    path = await services(request).recordings.file_path(
        user, await _class(request), request.match_info["rid"], request.match_info["name"]
    )
    return _file(path)


async def download_composed(request: web.Request) -> web.StreamResponse:
    user = await _download_user(request)
    path = await services(request).recordings.composed_path(
        user, await _class(request), request.match_info["rid"]
    )
    return _file(path)


async def delete(request: web.Request) -> web.Response:
    user = await current_user(request)
    rid = request.match_info["rid"]
    await services(request).recordings.delete(user, await _class(request), rid)
    return ok({"recordingId": rid, "deleted": True})


RID = "{rid:(?!(?:start|stop)$)[^/]+}"
"""Any segment but ``start`` and ``stop``: a plain ``{rid}`` also took those, so a GET there
answered ``Recording not found`` and their ``Allow`` named GET and DELETE. Other ids that
are no recording's still answer ``Recording not found`` after the token and class checks."""


def setup(app: web.Application) -> None:
    app.router.add_post("/class/{id}/recordings/start", start)
    app.router.add_post("/class/{id}/recordings/stop", stop)
    app.router.add_get("/class/{id}/recordings", list_recordings)
    app.router.add_get(f"/class/{{id}}/recordings/{RID}", detail)
    app.router.add_get(f"/class/{{id}}/recordings/{RID}/files/{{name}}", download_file)
    app.router.add_get(f"/class/{{id}}/recordings/{RID}/composed", download_composed)
    app.router.add_delete(f"/class/{{id}}/recordings/{RID}", delete)

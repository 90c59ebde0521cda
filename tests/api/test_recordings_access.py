"""Who may start, stop, list, download and delete a class's recordings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from api.errors import (
    NOT_CLASS_TEACHER,
    NOT_ENROLLED,
    TEACHER_ONLY,
    UNAUTHORIZED,
    WS_TEACHER_EVENT_ONLY,
)
from api.ids import new_id
from api.models import ComposeJob, Recording, RecordingFile
from api.recordings.service import NOT_RECORDING, NOT_SHARED, ROOM_NOT_OPEN
from api.timeutil import utcnow
from scripts.synthpeer.api_client import ApiFailure

from .conftest import RunningServer

ENDPOINTS = ("start", "stop", "list", "detail", "file", "composed", "delete")
OK = {"start": 409, "stop": 409, "list": 200, "detail": 200, "file": 200, "composed": 200}


async def _stored_recording(server: RunningServer, class_id: str, teacher_id: str) -> Recording:
    recording = Recording(
        id=new_id(),
        class_id=class_id,
        session_id=new_id(),
        started_by=teacher_id,
        started_at=utcnow(),
        status="stopped",
        stopped_at=utcnow(),
        participants=(teacher_id,),
        files=(RecordingFile("t-video-1.mkv", teacher_id, "video", 0.0, 1.0, 4),),
        job=ComposeJob(status="done", progress=1.0, file="composed.webm", size=4, duration=1.0),
    )
    await server.services.store.put_recording(recording)
    await asyncio.to_thread(_write_files, server.settings.recordings_path / class_id / recording.id)
    return recording


def _write_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "t-video-1.mkv").write_bytes(b"mkv!")
    (folder / "composed.webm").write_bytes(b"webm")


async def _call(
    server: RunningServer, endpoint: str, class_id: str, rid: str, token: str | None
) -> tuple[int, str | None]:
    base = f"/class/{class_id}/recordings"
    method, path = {
        "start": ("POST", f"{base}/start"),
        "stop": ("POST", f"{base}/stop"),
        "list": ("GET", base),
        "detail": ("GET", f"{base}/{rid}"),
        "file": ("GET", f"{base}/{rid}/files/t-video-1.mkv"),
        "composed": ("GET", f"{base}/{rid}/composed"),
        "delete": ("DELETE", f"{base}/{rid}"),
    }[endpoint]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.api.base_url + path, headers=headers) as r,
    ):
        if r.content_type == "application/json":
            body = await r.json()
            return r.status, body.get("error")
        return r.status, None


@pytest.mark.parametrize("shared", [False, True])
async def test_the_authorization_matrix_of_every_recording_endpoint(
    server: RunningServer, shared: bool
) -> None:
    room = await server.classroom(students=1)
    enrolled = room.students[0]
    outsider = await server.account("student")
    other_teacher = await server.account("teacher")
    await server.api.call(
        "PUT",
        f"/class/{room.class_id}/settings",
        token=room.teacher.token,
        body={"allowStudentRecordings": shared},
    )
    await server.api.start_session(room.teacher, room.class_id)
    recording = await _stored_recording(server, room.class_id, room.teacher.id)
    reader_error = None if shared else NOT_SHARED

    expected: dict[str, dict[str, tuple[int, str | None]]] = {
        "anonymous": {e: (401, UNAUTHORIZED) for e in ENDPOINTS},
        "other teacher": {e: (403, NOT_CLASS_TEACHER) for e in ENDPOINTS},
        "outsider": {
            e: (403, TEACHER_ONLY if e in ("start", "stop", "delete") else NOT_ENROLLED)
            for e in ENDPOINTS
        },
        "enrolled": {
            e: (
                (403, TEACHER_ONLY)
                if e in ("start", "stop", "delete")
                else ((200, None) if shared else (403, reader_error))
            )
            for e in ENDPOINTS
        },
    }
    tokens = {
        "anonymous": None,
        "other teacher": other_teacher.token,
        "outsider": outsider.token,
        "enrolled": enrolled.token,
    }
    for who, table in expected.items():
        for endpoint, want in table.items():
            got = await _call(server, endpoint, room.class_id, recording.id, tokens[who])
            assert got == want, (who, endpoint, got)

    owner = room.teacher.token
    assert await _call(server, "start", room.class_id, recording.id, owner) == (409, ROOM_NOT_OPEN)
    assert await _call(server, "stop", room.class_id, recording.id, owner) == (409, NOT_RECORDING)
    for endpoint in ("list", "detail", "file", "composed"):
        assert (await _call(server, endpoint, room.class_id, recording.id, owner))[0] == 200
    assert await _call(server, "delete", room.class_id, recording.id, owner) == (200, None)
    assert await _call(server, "detail", room.class_id, recording.id, owner) == (
        404,
        "Recording not found",
    )
    assert not (server.settings.recordings_path / room.class_id / recording.id).exists()


async def test_only_the_owning_teacher_may_record_over_the_websocket(server: RunningServer) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    student = await server.api.open_socket(room.students[0].token, room.class_id)
    teacher = await server.api.open_socket(room.teacher.token, room.class_id)
    try:
        with pytest.raises(ApiFailure) as refused:
            await student.request("RECORDING_START", {}, "NEVER", timeout=5)
        assert refused.value.error == WS_TEACHER_EVENT_ONLY
        with pytest.raises(ApiFailure) as idle:
            await teacher.request("RECORDING_STOP", {}, "NEVER", timeout=5)
        assert idle.value.error == NOT_RECORDING
    finally:
        await student.close()
        await teacher.close()

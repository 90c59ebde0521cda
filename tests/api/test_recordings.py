"""Recording a live class with real peers: files, the composed grid, limits, Range downloads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from api.config import Settings
from api.recordings.service import ROOM_NOT_OPEN, STORAGE_FULL
from api.timeutil import parse_iso
from scripts.synthpeer.api_client import Account
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig, compose
from sfu.recorder import LIMIT_REACHED
from tests.recording.inspect import inspect_file, missing_frames
from tests.sfu.test_compose import _cells

from .conftest import RunningServer, ServerFactory

PeerFactory = Callable[..., Awaitable[SyntheticPeer]]
CLIP = 150
JOIN_BACKLOG_S = 0.25
"""How late a late joiner's first recorded frame may arrive after its RTP timestamp."""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", ice_addresses=("127.0.0.1",)
    )


@pytest.fixture
async def media_server(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(settings)


@pytest.fixture
async def peers(media_server: RunningServer) -> AsyncIterator[PeerFactory]:
    made: list[SyntheticPeer] = []

    async def make(account: Account, *, publish: bool = True) -> SyntheticPeer:
        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config,
                video=vp8_clip() if publish else None,
                audio=ToneAudioTrack() if publish else None,
                decode="none",
            )

        peer = SyntheticPeer(media_server.api, account, media)
        made.append(peer)
        await peer.join(publish=publish)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def _flowing(server: RunningServer, producers: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        rooms = server.services.rooms.rooms
        found = [p for r in rooms for p in r.router.producers.values() if p.frames > 3]
        if len(found) >= producers:
            return
        assert time.monotonic() < deadline, "media did not flow"
        await asyncio.sleep(0.05)


async def _job_done(server: RunningServer, teacher: Account, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        detail: dict[str, Any] = await server.api.call("GET", path, token=teacher.token)
        if detail["job"]["status"] in ("done", "failed"):
            return detail
        assert time.monotonic() < deadline, detail
        await asyncio.sleep(0.1)


async def _download(
    server: RunningServer, path: str, token: str, range_header: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"}
    if range_header:
        headers["Range"] = range_header
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.api.base_url + path, headers=headers) as response,
    ):
        return response.status, await response.read(), dict(response.headers)


async def test_a_recorded_class_has_playable_files_per_participant_and_a_composed_grid(
    media_server: RunningServer, peers: PeerFactory, tmp_path: Path
) -> None:
    server = media_server
    room = await server.classroom(students=2)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await peers(room.teacher)
    first = await peers(room.students[0])
    await _flowing(server, 4)
    base = f"/class/{room.class_id}/recordings"

    assert teacher.socket is not None and first.socket is not None
    asked = time.monotonic()
    await teacher.socket.send("RECORDING_START", {})
    started = await first.socket.next("RECORDING")
    began = time.monotonic()
    assert started["active"] is True
    rid = started["recordingId"]
    assert (await teacher.socket.next("RECORDING"))["recordingId"] == rid

    await asyncio.sleep(1.0)
    late = await peers(room.students[1])
    assert late.room is not None and late.room["recording"] == {"active": True, "recordingId": rid}
    await asyncio.sleep(2.0)
    stopped = await server.api.call("POST", f"{base}/stop", token=room.teacher.token)
    ended = time.monotonic()
    assert stopped["status"] == "stopped" and stopped["stoppedAt"]
    assert (await late.socket.next("RECORDING")) == {  # type: ignore[union-attr]
        "active": False,
        "recordingId": rid,
        "reason": None,
    }

    detail = await _job_done(server, room.teacher, f"{base}/{rid}")
    assert detail["job"]["status"] == "done", detail["job"]
    # The server's own start and stop instants (ms precision) lie between the request and
    # the announcement of each (causal bounds, whatever the machine's speed; 10 ms for the
    # millisecond rounding and the two clocks).
    recorded = (parse_iso(detail["stoppedAt"]) - parse_iso(detail["startedAt"])).total_seconds()
    assert 3.0 - 0.01 <= recorded <= ended - asked + 0.01
    assert detail["job"]["progress"] == 1.0
    everyone = {room.teacher.id, room.students[0].id, room.students[1].id}
    assert set(detail["participants"]) == everyone
    assert {(f["userId"], f["kind"], f["source"]) for f in detail["files"]} == {
        (user, kind, source)
        for user in everyone
        for kind, source in (("audio", "microphone"), ("video", "camera"))
    }
    listed = await server.api.call("GET", base, token=room.teacher.token)
    assert [r["recordingId"] for r in listed] == [rid]

    folder = server.settings.recordings_path / room.class_id / rid
    for file in detail["files"]:
        path = folder / file["name"]
        assert path.stat().st_size == file["size"]
        report = inspect_file(path)
        assert report.kinds == [file["kind"]] and report.decode_errors == 0
        truth = recorded - file["offset"]
        # A file's offset is its first frame's arrival, its duration comes from RTP
        # timestamps: a first frame that arrived late (the server busy with a join, as in
        # one full-suite run: 0.16 s) makes the file up to that much longer than `truth`.
        late_start = max(0.05 * truth, JOIN_BACKLOG_S)
        assert -0.05 * truth <= report.duration - truth <= late_start, (file, report, truth)
        assert abs(report.duration - file["duration"]) <= 0.05 * truth
        if file["kind"] == "video":
            assert None not in report.indices
            assert missing_frames(report.indices, CLIP) == 0
    late_video = next(
        f for f in detail["files"] if f["userId"] == room.students[1].id and f["kind"] == "video"
    )
    assert late_video["offset"] >= 0.9

    composed = tmp_path / "composed.webm"
    status, body, _ = await _download(server, f"{base}/{rid}/composed", room.teacher.token)
    assert status == 200
    composed.write_bytes(body)
    size, barcodes, samples = _cells(composed, 3)
    assert size == (2 * compose.CELL[0], 2 * compose.CELL[1])
    for cell in barcodes:
        assert sum(b is not None for b in cell) >= 0.5 * len(cell), cell
    assert samples >= 0.9 * (ended - began) * compose.RATE


async def test_downloads_honour_range_requests(
    media_server: RunningServer, peers: PeerFactory
) -> None:
    server = media_server
    room = await server.classroom(students=0)
    await server.api.start_session(room.teacher, room.class_id)
    await peers(room.teacher)
    await _flowing(server, 2)
    base = f"/class/{room.class_id}/recordings"
    rid = (await server.api.call("POST", f"{base}/start", token=room.teacher.token))["recordingId"]
    await asyncio.sleep(1.0)
    detail = await server.api.call("POST", f"{base}/stop", token=room.teacher.token)
    name = next(f["name"] for f in detail["files"] if f["kind"] == "video")
    path = f"{base}/{rid}/files/{name}"

    status, whole, headers = await _download(server, path, room.teacher.token)
    assert status == 200 and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "video/x-matroska"
    status, part, headers = await _download(server, path, room.teacher.token, "bytes=100-199")
    assert status == 206 and part == whole[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    status, tail, _ = await _download(server, path, room.teacher.token, "bytes=-50")
    assert status == 206 and tail == whole[-50:]
    status, _, _ = await _download(server, path, room.teacher.token, f"bytes={len(whole) + 9}-")
    assert status == 416
    async with aiohttp.ClientSession() as session:
        url = f"{server.api.base_url}{path}?token={room.teacher.token}"
        async with session.get(url, headers={"Range": "bytes=0-9"}) as response:
            assert response.status == 206 and await response.read() == whole[:10]
    await _job_done(server, room.teacher, f"{base}/{rid}")


async def test_a_full_store_refuses_to_start_and_a_filling_one_stops_gracefully(
    start_server: ServerFactory, settings: Settings
) -> None:
    from dataclasses import replace

    tiny = await start_server(replace(settings, recordings_max_bytes=1000))
    room = await tiny.classroom(students=0)
    await tiny.api.start_session(room.teacher, room.class_id)
    base = f"/class/{room.class_id}/recordings"
    status, body = await tiny.api.request("POST", f"{base}/start", token=room.teacher.token)
    assert (status, body["error"]) == (409, ROOM_NOT_OPEN)

    peer = SyntheticPeer(tiny.api, room.teacher, lambda c: MediaClient(c, decode="none"))
    try:
        await peer.join(publish=False)
        status, body = await tiny.api.request("POST", f"{base}/start", token=room.teacher.token)
        assert status == 507
        assert body["error"].startswith(STORAGE_FULL.split(":")[0])
        assert "0 of 1000 bytes used" in body["error"]
    finally:
        await peer.close()

    small = await start_server(
        replace(settings, data_dir=settings.data_dir / "b", recordings_max_bytes=150_000)
    )
    room = await small.classroom(students=0)
    await small.api.start_session(room.teacher, room.class_id)
    peer = SyntheticPeer(
        small.api,
        room.teacher,
        lambda c: MediaClient(c, video=vp8_clip(), audio=ToneAudioTrack(), decode="none"),
    )
    try:
        await peer.join()
        await _flowing(small, 2)
        base = f"/class/{room.class_id}/recordings"
        await small.api.call("POST", f"{base}/start", token=room.teacher.token)
        assert peer.socket is not None
        assert (await peer.socket.next("RECORDING"))["active"] is True
        stopped = await peer.socket.next("RECORDING", timeout=15)
        assert stopped["active"] is False and stopped["reason"] == LIMIT_REACHED
        detail = await _job_done(small, room.teacher, f"{base}/{stopped['recordingId']}")
        assert detail["stopReason"] == LIMIT_REACHED and detail["status"] == "stopped"
        folder = small.settings.recordings_path / room.class_id / stopped["recordingId"]
        assert sum(f["size"] for f in detail["files"]) <= 150_000 + 64 * 1024
        for file in detail["files"]:
            report = inspect_file(folder / file["name"], barcode=False)
            assert report.decode_errors == 0 and report.duration > 0.5
    finally:
        await peer.close()

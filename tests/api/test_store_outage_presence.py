"""MongoDB stopped mid-session (nx-27017 over the wire, stopped by its PID) while students
are in the room with real media: the room goes on (media, ``ROSTER``, a student leaving and
joining again), presence is buffered (``/health`` ``presenceBuffer``), ending the session
is refused without losing it, and once the store is back the buffered presence is written
and the final attendance has every interval. The same end refused while SQLite is locked
by another connection: the class and session can still be read, the presence cannot be
written."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from api.store import SQLITE_FILE_NAME
from api.store.outage import STORE_UNAVAILABLE
from api.timeutil import utcnow
from scripts.support.nx27017 import (
    Nx27017Server,
    restart_nx27017,
    start_nx27017,
    stop_nx27017,
)
from scripts.synthpeer.api_client import Account
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

from .conftest import RunningServer, ServerFactory
from .room_peers import wait_for

GRACE = 0.5


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[list[Nx27017Server]]:
    """A store of this test's own, that it may stop and start (the last one is running)."""
    servers = [start_nx27017(tmp_path / "nx")]
    try:
        yield servers
    finally:
        stop_nx27017(servers[-1])


def peer_of(server: RunningServer, account: Account) -> SyntheticPeer:
    def media(config: MediaConfig) -> MediaClient:
        return MediaClient(config, video=vp8_clip(), audio=ToneAudioTrack(), decode="none")

    return SyntheticPeer(server.api, account, media)


async def buffered(server: RunningServer) -> dict[str, Any]:
    health: dict[str, Any] = await server.api.call("GET", "/health")
    return dict(health["presenceBuffer"])


def frames_from(peer: SyntheticPeer, user_id: str) -> int:
    sink = peer.media.sink_of(user_id, "camera") if peer.media else None
    return sink.frames if sink is not None else 0


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def test_the_room_goes_on_and_presence_is_kept_while_mongodb_is_down(
    start_server: ServerFactory, own_mongo: list[Nx27017Server], tmp_path: Path
) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        mongodb_uri=own_mongo[0].uri,
        mongodb_db="outage",
        mongodb_timeout_seconds=1.0,
        ice_addresses=("127.0.0.1",),
        presence_grace_seconds=GRACE,
        presence_flush_seconds=0.25,
    )
    server = await start_server(settings)
    room = await server.classroom(students=2)
    session = await server.api.start_session(room.teacher, room.class_id)
    leaver, stayer = room.students
    peers = [peer_of(server, account) for account in (room.teacher, leaver, stayer)]
    teacher, leaving, _ = peers
    try:
        for peer in peers:
            await peer.join()
        live = server.services.rooms.live_room(room.class_id)
        assert live is not None

        def media_up(*accounts: Account) -> bool:
            members = live.members
            return all(a.id in members and members[a.id].media_connected for a in accounts)

        await wait_for(lambda: media_up(leaver, stayer))
        await wait_for(lambda: frames_from(teacher, stayer.id) > 10)
        await wait_for(lambda: _pending(server) == 0)  # a flush may be in flight

        stop_nx27017(own_mongo[0])
        stopped = time.monotonic()
        await wait_for(lambda: _pending(server) > 0, timeout=5)
        buffering_after = time.monotonic() - stopped
        status, answer = await server.api.request("GET", "/classes", token=room.teacher.token)
        assert (status, answer) == (503, {"success": False, "error": STORE_UNAVAILABLE})
        answered_503_after = time.monotonic() - stopped

        frames_before = frames_from(teacher, stayer.id)
        assert teacher.socket is not None
        await leaving.leave()
        left_at = utcnow()
        await teacher.socket.next(  # built without the store, the stayer still in
            "ROSTER",
            timeout=10,
            where=lambda r: not _row(r, leaver.id)["inRoom"] and _row(r, stayer.id)["connected"],
        )
        await asyncio.sleep(2 * GRACE)  # a gap the record keeps
        rejoined_at = utcnow()
        await leaving.join()  # through the open room: the store cannot say which class
        await wait_for(lambda: media_up(leaver))
        await teacher.socket.next(
            "ROSTER", timeout=10, where=lambda r: _row(r, leaver.id)["connected"] is True
        )
        await wait_for(lambda: frames_from(teacher, leaver.id) > 10)
        assert frames_from(teacher, stayer.id) > frames_before + 10  # media went on

        status, answer = await server.api.request(
            "POST", "/attendance/end", token=room.teacher.token, body={"classId": room.class_id}
        )
        assert (status, answer) == (503, {"success": False, "error": STORE_UNAVAILABLE})
        during = await buffered(server)
        assert during["pending"] >= 4  # the leave, the rejoin, a heartbeat per student
        assert during["dropped"] == during["merged"] == during["failed"] == 0

        own_mongo.append(restart_nx27017(own_mongo[0]))
        restarted = time.monotonic()
        await wait_for(lambda: _pending(server) == 0, timeout=15)
        drained_after = time.monotonic() - restarted
        assert (await buffered(server))["pending"] == 0
        summary = await server.api.end_session(room.teacher, room.class_id)
        assert summary["total"] == 2
        print(
            f"\noutage timeline: presence buffered {buffering_after:.2f} s after the stop, "
            f"REST 503 {answered_503_after:.2f} s after it, {during['pending']} writes "
            f"waiting at the refused end, drained {drained_after:.2f} s after the restart"
        )
    finally:
        for peer in peers:
            await peer.close()

    detail = await server.api.call(
        "GET",
        f"/class/{room.class_id}/sessions/{session['sessionId']}",
        token=room.teacher.token,
    )
    rows = {row["studentId"]: row for row in detail["students"]}
    intervals = [[parse(a), parse(b)] for a, b in rows[leaver.id]["intervals"]]
    assert len(intervals) == 2, rows[leaver.id]
    (_, first_end), (second_start, _) = intervals
    assert abs((first_end - left_at).total_seconds()) < 1.0
    assert second_start >= rejoined_at
    assert (second_start - first_end).total_seconds() > GRACE
    assert len(rows[stayer.id]["intervals"]) == 1  # through the whole outage
    events = await server.services.store.list_presence_events(session["sessionId"], leaver.id)
    assert [(e.kind, e.reason) for e in events] == [
        ("connected", None),
        ("disconnected", "left"),
        ("connected", None),
        ("disconnected", "session ended"),
    ]


async def test_ending_while_sqlite_is_locked_is_503_and_keeps_the_session_and_its_presence(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        sqlite_busy_timeout_seconds=0.2,
        ice_addresses=("127.0.0.1",),
        presence_grace_seconds=GRACE,
        presence_flush_seconds=0.25,
    )
    server = await start_server(settings)
    room = await server.classroom(students=1)
    session = await server.api.start_session(room.teacher, room.class_id)
    student = peer_of(server, room.students[0])
    end = {"classId": room.class_id}
    other = sqlite3.connect(tmp_path / "data" / SQLITE_FILE_NAME, isolation_level=None)
    try:
        await student.join()
        live = server.services.rooms.live_room(room.class_id)
        assert live is not None
        await wait_for(lambda: live.members[student.user_id].media_connected)
        await wait_for(lambda: _pending(server) == 0)
        other.execute("BEGIN IMMEDIATE")
        await student.leave()
        await wait_for(lambda: _pending(server) >= 2)  # the leave waits behind the lock
        status, answer = await server.api.request(
            "POST", "/attendance/end", token=room.teacher.token, body=end
        )
        assert (status, answer) == (503, {"success": False, "error": STORE_UNAVAILABLE})
        assert not live.presence.closed  # the room goes on: the teacher ends it again later
        await student.join()
        await wait_for(lambda: live.members[student.user_id].media_connected)
        other.rollback()
        summary = await server.api.end_session(room.teacher, room.class_id)
        assert summary["total"] == 1
        assert (await buffered(server))["pending"] == 0
    finally:
        other.close()
        await student.close()
    events = await server.services.store.list_presence_events(session["sessionId"], student.user_id)
    assert [(e.kind, e.reason) for e in events] == [
        ("connected", None),
        ("disconnected", "left"),
        ("connected", None),
        ("disconnected", "session ended"),
    ]


def _pending(server: RunningServer) -> int:
    return int(server.services.presence_backlog.snapshot()["pending"])


def _row(roster: dict[str, Any], user_id: str) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in roster["students"] if r["userId"] == user_id)
    return row

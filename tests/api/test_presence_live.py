"""Presence from real media: provisional statuses, the roster, the active speaker, and the
final per-student detail with its reports."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from api.config import Settings
from scripts.synthpeer.api_client import Account
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig
from tests.waiting import wait_until

from .conftest import RunningServer, ServerFactory

PeerFactory = Callable[..., Awaitable[SyntheticPeer]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        presence_grace_seconds=1.0,
        presence_flush_seconds=0.25,
    )


@pytest.fixture
async def server(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(settings)


@pytest.fixture
async def peers(server: RunningServer) -> AsyncIterator[PeerFactory]:
    made: list[SyntheticPeer] = []

    async def make(account: Account, *, video: bool = True, level: float = -20.0) -> SyntheticPeer:
        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config,
                video=vp8_clip() if video else None,
                audio=ToneAudioTrack(level_dbov=level),
                decode="none",
            )

        peer = SyntheticPeer(server.api, account, media)
        made.append(peer)
        await peer.join()
        return peer

    yield make
    for peer in made:
        await peer.close()


async def test_presence_makes_students_provisionally_present_and_feeds_the_roster(
    server: RunningServer, peers: PeerFactory
) -> None:
    room = await server.classroom(students=2)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await peers(room.teacher, level=-127.0)
    speaker = await peers(room.students[0], level=-15.0)
    assert teacher.socket is not None and speaker.socket is not None

    async def summary_counts_one() -> bool:
        assert teacher.socket is not None
        summary = await teacher.socket.request("TODAY_SUMMARY", {}, "TODAY_SUMMARY")
        return summary == {"present": 1, "absent": 0, "total": 1}

    await wait_until(summary_counts_one)
    assert await speaker.socket.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {
        "status": "present"
    }
    absent = await server.api.open_socket(room.students[1].token)
    assert await absent.request("MY_ATTENDANCE", {}, "MY_ATTENDANCE") == {
        "status": "not yet updated"
    }
    await absent.close()

    speaking = await teacher.socket.next("ACTIVE_SPEAKER", timeout=10)
    assert speaking == {"userId": room.students[0].id}

    roster = await teacher.socket.next(
        "ROSTER", timeout=10, where=lambda r: any(s["connected"] for s in r["students"])
    )
    rows = {row["userId"]: row for row in roster["students"]}
    assert rows[room.students[0].id]["inRoom"] is True
    assert rows[room.students[0].id]["status"] == "present"
    assert rows[room.students[1].id] | {"name": ""} == {
        "userId": room.students[1].id,
        "name": "",
        "inRoom": False,
        "connected": False,
        "audio": False,
        "video": False,
        "status": None,
        "source": None,
        "presenceSeconds": 0.0,
        "firstJoin": None,
    }
    asked = await teacher.socket.request("ROSTER", {}, "ROSTER")
    assert {s["userId"] for s in asked["students"]} == set(rows)

    await speaker.set_media_state(audio=True, video=False)
    muted = await teacher.socket.next(
        "ROSTER",
        timeout=5,
        where=lambda r: any(
            s["userId"] == room.students[0].id and not s["video"] for s in r["students"]
        ),
    )
    assert muted["sessionId"] == roster["sessionId"]


async def test_the_final_record_holds_presence_camera_and_talk_time(
    server: RunningServer, peers: PeerFactory
) -> None:
    room = await server.classroom(students=2)
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await peers(room.teacher, level=-127.0)
    student = await peers(room.students[0], level=-15.0)
    joined = time.monotonic()
    await asyncio.sleep(2.5)
    await student.leave()
    in_room = time.monotonic() - joined
    assert teacher.socket is not None
    await teacher.socket.next("PEER_LEFT")
    await asyncio.sleep(1.5)
    done = await teacher.socket.request("DONE", {}, "DONE")
    assert done == {"message": "Attendance persisted", "present": 0, "absent": 2, "total": 2}

    sessions = await server.api.call(
        "GET", f"/class/{room.class_id}/sessions", token=room.teacher.token
    )
    assert len(sessions) == 1 and sessions[0]["isActive"] is False
    session_id = sessions[0]["sessionId"]
    detail = await server.api.call(
        "GET", f"/class/{room.class_id}/sessions/{session_id}", token=room.teacher.token
    )
    rows = {row["studentId"]: row for row in detail["students"]}
    row = rows[room.students[0].id]
    # In the room for ~2.5 s of a ~4.5 s session: under the 75 % default: absent by policy.
    assert row["status"] == "absent" and row["source"] == "presence"
    assert abs(row["presenceSeconds"] - in_room) < 1.0
    assert 1.5 < row["cameraSeconds"] <= row["presenceSeconds"] + 0.5
    assert 1.0 < row["talkSeconds"] <= row["presenceSeconds"] + 0.5
    assert len(row["intervals"]) == 1 and row["firstJoin"] and row["lastLeave"]
    assert rows[room.students[1].id]["presenceSeconds"] == 0
    assert rows[room.students[1].id]["firstJoin"] is None

    async with server.api._session.get(
        f"{server.api.base_url}/class/{room.class_id}/sessions/{session_id}/attendance.csv",
        headers={"Authorization": f"Bearer {room.teacher.token}"},
    ) as response:
        assert response.status == 200 and response.content_type == "text/csv"
        table = list(csv.DictReader(io.StringIO(await response.text())))
    assert {r["studentId"]: r["status"] for r in table} == {
        room.students[0].id: "absent",
        room.students[1].id: "absent",
    }

    history = await server.api.call(
        "GET", f"/class/{room.class_id}/my-history", token=room.students[0].token
    )
    assert [(h["sessionId"], h["status"]) for h in history] == [(session_id, "absent")]
    assert history[0]["presenceSeconds"] == row["presenceSeconds"]


def _seconds(spans: list[list[str | None]]) -> float:
    return sum(
        (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
        for start, end in spans
    )


async def test_the_timeline_has_camera_and_talking_spans_that_add_up_to_the_seconds(
    server: RunningServer, peers: PeerFactory
) -> None:
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    student = await peers(room.students[0], level=-15.0)
    await asyncio.sleep(2.0)
    await student.set_microphone(False)  # talking ends; the camera goes on
    path = f"/class/{room.class_id}/sessions"
    session_id = (await server.api.call("GET", path, token=room.teacher.token))[0]["sessionId"]
    report = f"{path}/{session_id}/participation"

    async def row_when(ready: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        for _ in range(100):
            answer = await server.api.call("GET", report, token=room.teacher.token)
            row = dict(answer["students"][0])
            if ready(row):
                return row
            await asyncio.sleep(0.1)
        raise AssertionError(f"the participation record did not get there: {row}")

    live = await row_when(lambda r: len(r["talkSpans"]) == 1 and r["talkSpans"][0][1])
    assert len(live["cameraSpans"]) == 1 and live["cameraSpans"][0][1] is None  # still on
    await asyncio.sleep(1.0)
    await student.leave()
    final = await row_when(lambda r: r["cameraSpans"] and r["cameraSpans"][-1][1])
    assert len(final["cameraSpans"]) == 1 and len(final["talkSpans"]) == 1
    camera_start, camera_end = final["cameraSpans"][0]
    talk_start, talk_end = live["talkSpans"][0]
    (join, leave) = final["intervals"][0]
    assert join <= camera_start < talk_end <= str(camera_end) <= leave
    assert join <= talk_start
    # The spans are the counters' seconds, to the 0.5 s sampling step and a talk hold.
    assert abs(_seconds(final["cameraSpans"]) - final["cameraSeconds"]) < 0.8
    assert abs(_seconds(final["talkSpans"]) - final["talkSeconds"]) < 0.8
    assert 1.0 < final["talkSeconds"] < final["cameraSeconds"]


async def test_the_policy_is_per_class_and_a_teacher_mark_overrides_it(
    server: RunningServer, peers: PeerFactory
) -> None:
    room = await server.classroom(students=2)
    changed = await server.api.call(
        "PUT",
        f"/class/{room.class_id}/settings",
        token=room.teacher.token,
        body={"presentRatio": 0.5, "lateAfterSeconds": 1},
    )
    assert changed["policy"] == {"presentRatio": 0.5, "lateAfterSeconds": 1}
    await server.api.start_session(room.teacher, room.class_id)
    teacher = await peers(room.teacher)
    await asyncio.sleep(1.5)
    late = await peers(room.students[0])
    assert late.socket is not None and teacher.socket is not None
    await teacher.socket.send(
        "ATTENDANCE_MARKED", {"studentId": room.students[1].id, "status": "present"}
    )
    await teacher.socket.next("ATTENDANCE_MARKED")
    await asyncio.sleep(1.0)
    await teacher.socket.request("DONE", {}, "DONE")
    sessions = await server.api.call(
        "GET", f"/class/{room.class_id}/sessions", token=room.teacher.token
    )
    detail = await server.api.call(
        "GET",
        f"/class/{room.class_id}/sessions/{sessions[0]['sessionId']}",
        token=room.teacher.token,
    )
    rows = {row["studentId"]: row for row in detail["students"]}
    assert rows[room.students[0].id]["status"] == "late"
    marked = rows[room.students[1].id]
    assert (marked["status"], marked["source"]) == ("present", "teacher")
    assert marked["override"]["by"] == room.teacher.id and marked["presenceSeconds"] == 0


async def test_report_routes_check_roles_and_membership(
    start_server: ServerFactory, settings: Settings
) -> None:
    server = await start_server(replace(settings))
    room = await server.classroom(students=1)
    other = await server.account("teacher")
    student = room.students[0]
    await server.api.start_session(room.teacher, room.class_id)
    await server.api.end_session(room.teacher, room.class_id)
    sessions = await server.api.call(
        "GET", f"/class/{room.class_id}/sessions", token=room.teacher.token
    )
    sid = sessions[0]["sessionId"]
    base = f"/class/{room.class_id}"
    for path in (
        f"{base}/sessions",
        f"{base}/sessions/{sid}",
        f"{base}/sessions/{sid}/attendance.csv",
    ):
        assert (await server.api.request("GET", path))[0] == 401
        status, body = await server.api.request("GET", path, token=student.token)
        assert (status, body["error"]) == (403, "Forbidden, teacher access required")
        status, body = await server.api.request("GET", path, token=other.token)
        assert (status, body["error"]) == (403, "Forbidden, not class teacher")
    for missing in ("0123456789abcdef01234567", "nope"):
        status, body = await server.api.request(
            "GET", f"{base}/sessions/{missing}", token=room.teacher.token
        )
        assert (status, body["error"]) == (404, "Session not found")
    status, body = await server.api.request("GET", f"{base}/my-history", token=room.teacher.token)
    assert (status, body["error"]) == (403, "Forbidden, student access required")
    outsider = await server.account("student")
    status, body = await server.api.request("GET", f"{base}/my-history", token=outsider.token)
    assert (status, body["error"]) == (403, "Forbidden, not enrolled in class")
    for bad in (
        {"presentRatio": 0},
        {"presentRatio": 1.5},
        {"lateAfterSeconds": -1},
        {"lateAfterSeconds": 2.5},
        {"allowStudentRecordings": "yes"},
        {"allowStudentScreenShare": 1},
    ):
        status, body = await server.api.request(
            "PUT", f"{base}/settings", token=room.teacher.token, body=bad
        )
        assert (status, body["error"]) == (400, "Invalid request schema"), bad
    status, body = await server.api.request(
        "PUT", f"{base}/settings", token=other.token, body={"presentRatio": 0.5}
    )
    assert (status, body["error"]) == (403, "Forbidden, not class teacher")

"""Server CPU per cheap class WebSocket event, against ``python -m api`` as a process.

A class of ``--students`` (30) with an active session whose presence already holds
``--presence-events`` (2000) events (joins and leaves of the students, as a long lesson
leaves them); one student's socket sends ``--events`` (2000) ``MY_ATTENDANCE``, one at a
time, each awaited; the teacher's the same number of ``TODAY_SUMMARY``. Reported per
event: the server's CPU (user + system, from /proc of its PID, over the whole run of that
event), in ms. The server is pinned to the first core and this process to the second.

    .venv/bin/python -m scripts.bench_ws_events [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

from api.ids import UserId
from api.models import PresenceEvent, PresenceKind
from api.store import SQLITE_FILE_NAME, SqliteStore
from scripts.bench.api_process import api_process
from scripts.synthpeer.api_client import Account, ClassSocket


async def _cpu_per_event(
    server: psutil.Process, socket: ClassSocket, event: str, reply: str, count: int
) -> float:
    before = server.cpu_times()
    for _ in range(count):
        await socket.request(event, {}, reply)
    after = server.cpu_times()
    spent = float((after.user - before.user) + (after.system - before.system))
    return 1000 * spent / count


async def _presence(data_dir: Path, session_id: str, students: list[Account], events: int) -> None:
    """Joins and leaves of the students, written into the server's SQLite file next to
    it (WAL lets a second connection write): the presence a long lesson leaves behind."""
    store = SqliteStore(data_dir / SQLITE_FILE_NAME)
    await store.open()
    try:
        session = await store.get_session(session_id)
        assert session is not None
        for number in range(events):
            student = students[number % len(students)]
            kind: PresenceKind = (
                "connected" if (number // len(students)) % 2 == 0 else "disconnected"
            )
            await store.append_presence_event(
                PresenceEvent(
                    session_id=session.id,
                    class_id=session.class_id,
                    user_id=UserId(student.id),
                    kind=kind,
                    at=session.started_at + timedelta(seconds=number),
                )
            )
    finally:
        await store.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {
        "AUTH_THROTTLE": "false",
        "PASSWORD_HASH_COST": "12",
        "WS_EVENTS_PER_SECOND": "100000",  # the limit is not what is measured
        "WS_EVENT_BURST": "1000000",
        "ROOM_MAX_PARTICIPANTS": str(args.students + 1),
    }
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})
    async with api_process(env) as server:
        api = server.api
        teacher = await api.register("Teacher", "teacher@bench.test", "teacher")
        class_id = str((await api.create_class(teacher, "Bench"))["_id"])
        students = []
        for index in range(args.students):
            student = await api.register(f"S{index}", f"s{index}@bench.test", "student")
            await api.enrol(teacher, class_id, student.id)
            students.append(student)
        session = await api.start_session(teacher, class_id)
        await _presence(server.data_dir, str(session["sessionId"]), students, args.presence_events)
        student_socket = await api.open_socket(students[0].token, class_id)
        teacher_socket = await api.open_socket(teacher.token, class_id)
        results = {
            "MY_ATTENDANCE": await _cpu_per_event(
                server.process, student_socket, "MY_ATTENDANCE", "MY_ATTENDANCE", args.events
            ),
            "TODAY_SUMMARY": await _cpu_per_event(
                server.process, teacher_socket, "TODAY_SUMMARY", "TODAY_SUMMARY", args.events
            ),
        }
        await student_socket.close()
        await teacher_socket.close()
    for event, ms in results.items():
        print(f"{event:15s} {ms:.3f} ms of server CPU per event")
    return {
        "command": "python -m scripts.bench_ws_events " + " ".join(sys.argv[1:]),
        "students": args.students,
        "presence_events": args.presence_events,
        "events": args.events,
        "server_cpu_ms_per_event": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--presence-events", type=int, default=2000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

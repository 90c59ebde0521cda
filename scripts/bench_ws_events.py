"""Server CPU per cheap class WebSocket event, against ``python -m api`` as a process.

A class of ``--students`` (30) with an active session whose presence already holds
``--presence-events`` (2000) events (joins and leaves of the students, as a long lesson
leaves them); one student's socket sends ``--events`` (1000) ``MY_ATTENDANCE``, one at a
time, each awaited; a student of a second class, which has no active session, as many
``MY_ATTENDANCE`` (each answered ``ERROR`` No active attendance session); the first student
as many unknown events (``ERROR`` Unknown event: what any event costs before its handler);
the teacher as many ``TODAY_SUMMARY``; and, for the floor, as many frames against a bare
aiohttp server that answers each with one (`scripts.bench.ws_echo`, on the same core).
Each is repeated ``--blocks`` (5) times. Reported per event: the
server's CPU (user + system, all its threads, from the kernel's CPU clock of its PID) over
one block, in ms, the median of the blocks (all are in the JSON). The server is pinned to
the first core and this process to the second.

    .venv/bin/python -m scripts.bench_ws_events [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from api.ids import UserId
from api.models import PresenceEvent, PresenceKind
from api.store import SQLITE_FILE_NAME, SqliteStore
from scripts.bench.api_process import api_process
from scripts.bench.systems import REPO, free_port, pinned, stop_process
from scripts.synthpeer.api_client import Account, ApiFailure, ClassSocket

NO_ACTIVE_SESSION = "No active attendance session"
UNKNOWN_EVENT = "Unknown event"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of the process, all its threads, to the nanosecond: Linux's clock of
    the process (what clock_getcpuclockid gives), where /proc counts 10 ms ticks."""
    return time.clock_gettime(((~pid) << 3) | 2)


@dataclass
class Cost:
    """Server CPU per event in ms: per block (the kernel's clock), and over all blocks as
    /proc counts it (10 ms ticks; the measure of the earlier figures)."""

    blocks: list[float]
    proc_ticks: float

    @property
    def median(self) -> float:
        return statistics.median(self.blocks)


async def _cpu_per_event(
    server: psutil.Process,
    socket: ClassSocket,
    event: str,
    reply: str,
    count: int,
    blocks: int,
    *,
    refused: str | None = None,
) -> Cost:
    """Server CPU per `event` answered with `reply` (or with ``ERROR`` `refused`), for
    each of `blocks` runs of `count` events (a neighbour's burst spoils one block)."""
    per_block = []
    ticks = server.cpu_times()
    for _ in range(blocks):
        before = _cpu_seconds(server.pid)
        for _ in range(count):
            try:
                await socket.request(event, {}, reply)
            except ApiFailure as failure:
                if refused is None or not str(failure).endswith(refused):
                    raise
        per_block.append(1000 * (_cpu_seconds(server.pid) - before) / count)
    after = server.cpu_times()
    spent = (after.user - ticks.user) + (after.system - ticks.system)
    return Cost(per_block, 1000 * spent / (count * blocks))


async def _bare_aiohttp(count: int, blocks: int) -> Cost:
    """The same round trips against `scripts.bench.ws_echo`, on the same core."""
    port = free_port()
    echo = subprocess.Popen(
        [sys.executable, "-m", "scripts.bench.ws_echo", str(port)],
        cwd=REPO,
        preexec_fn=pinned(0),
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws")
                    break
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError("the echo server did not answer within 30 s")
            socket = ClassSocket(ws)
            return await _cpu_per_event(
                psutil.Process(echo.pid),
                socket,
                "NO_SUCH_EVENT",
                "-",
                count,
                blocks,
                refused=UNKNOWN_EVENT,
            )
    finally:
        stop_process(echo)


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
        idle_class = str((await api.create_class(teacher, "Bench, no session"))["_id"])
        await api.enrol(teacher, idle_class, students[1].id)
        session = await api.start_session(teacher, class_id)
        await _presence(server.data_dir, str(session["sessionId"]), students, args.presence_events)
        student_socket = await api.open_socket(students[0].token, class_id)
        teacher_socket = await api.open_socket(teacher.token, class_id)
        idle_socket = await api.open_socket(students[1].token, idle_class)
        process, count, blocks = server.process, args.events, args.blocks
        costs = {
            "MY_ATTENDANCE": await _cpu_per_event(
                process, student_socket, "MY_ATTENDANCE", "MY_ATTENDANCE", count, blocks
            ),
            "MY_ATTENDANCE, no session": await _cpu_per_event(
                process,
                idle_socket,
                "MY_ATTENDANCE",
                "MY_ATTENDANCE",
                count,
                blocks,
                refused=NO_ACTIVE_SESSION,
            ),
            "unknown event": await _cpu_per_event(
                process, student_socket, "NO_SUCH_EVENT", "-", count, blocks, refused=UNKNOWN_EVENT
            ),
            "TODAY_SUMMARY": await _cpu_per_event(
                process, teacher_socket, "TODAY_SUMMARY", "TODAY_SUMMARY", count, blocks
            ),
        }
        await student_socket.close()
        await teacher_socket.close()
        await idle_socket.close()
    costs["bare aiohttp echo"] = await _bare_aiohttp(args.events, args.blocks)
    results = {event: cost.median for event, cost in costs.items()}
    for event, cost in costs.items():
        print(
            f"{event:26s} {cost.median:.3f} ms of server CPU per event "
            f"({cost.proc_ticks:.3f} as /proc ticks count it)"
        )
    return {
        "command": "python -m scripts.bench_ws_events " + " ".join(sys.argv[1:]),
        "students": args.students,
        "presence_events": args.presence_events,
        "events": args.events,
        "blocks": args.blocks,
        "server_cpu_ms_per_event": results,
        "server_cpu_ms_per_event_by_block": {e: c.blocks for e, c in costs.items()},
        "server_cpu_ms_per_event_proc_ticks": {e: c.proc_ticks for e, c in costs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--presence-events", type=int, default=2000)
    parser.add_argument("--events", type=int, default=1000, help="per block")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Time the presence hot path of each store: ``put_presence_counters`` and
``append_presence_event``, on SQLite and on a local nx-27017 server (plus a real MongoDB
when ``--mongodb-uri`` is given).

    .venv/bin/python -m scripts.bench_store [--json bench.json]

Counters are written the way a running class writes them: participants in turn, each
awaited (``sequential``), and then one tick of every participant at once (``per tick``).
Events are appended one after another. Each backend starts on empty data in a temporary
directory; the nx-27017 server is started for the run and stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from api.ids import UserId
from api.models import AttendanceSession, PresenceCounters, PresenceEvent, PresenceKind
from api.store import MongoStore, SqliteStore, Store
from scripts.support.nx27017 import running_nx27017

T0 = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Result:
    backend: str
    operation: str
    mode: str
    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float | None
    p99_ms: float | None


async def _setup(store: Store, participants: int) -> tuple[AttendanceSession, list[UserId]]:
    teacher = await store.create_user(name="T", email="t@bench.test", role="teacher")
    cls = await store.create_class(class_name="Bench", teacher_id=teacher.id)
    session = await store.start_session(class_id=cls.id, teacher_id=teacher.id, started_at=T0)
    users = [
        (await store.create_user(name=f"S{n}", email=f"s{n}@bench.test", role="student")).id
        for n in range(participants)
    ]
    return session, users


async def _timed_one_by_one(
    backend: str, operation: str, writes: list[Callable[[], Awaitable[None]]]
) -> Result:
    latencies = []
    started = time.perf_counter()
    for write in writes:
        before = time.perf_counter()
        await write()
        latencies.append(time.perf_counter() - before)
    seconds = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Result(
        backend,
        operation,
        "sequential",
        len(writes),
        round(seconds, 4),
        round(len(writes) / seconds),
        round(cuts[49] * 1000, 3),
        round(cuts[98] * 1000, 3),
    )


async def bench(
    backend: str, store: Store, counters: int, events: int, participants: int
) -> list[Result]:
    session, users = await _setup(store, participants)

    def put(n: int) -> Callable[[], Awaitable[None]]:
        tick, user = divmod(n, participants)
        record = PresenceCounters(
            session.id,
            session.class_id,
            users[user],
            camera_ms=tick * 1000,
            mic_ms=tick * 1000,
            talk_ms=tick * 100,
            last_seen_at=T0 + timedelta(seconds=tick),
        )
        return lambda: store.put_presence_counters(record)

    def append(n: int) -> Callable[[], Awaitable[None]]:
        kind: PresenceKind = "connected" if n // participants % 2 == 0 else "disconnected"
        record = PresenceEvent(
            session.id,
            session.class_id,
            users[n % participants],
            kind,
            T0 + timedelta(milliseconds=n),
        )
        return lambda: store.append_presence_event(record)

    results = [
        await _timed_one_by_one(backend, "put_presence_counters", [put(n) for n in range(counters)])
    ]

    ticks = [
        [put(counters + n) for n in range(i, min(i + participants, counters))]
        for i in range(0, counters, participants)
    ]
    started = time.perf_counter()
    for tick in ticks:
        await asyncio.gather(*(write() for write in tick))
    seconds = time.perf_counter() - started
    results.append(
        Result(
            backend,
            "put_presence_counters",
            f"per tick ({participants} at once)",
            counters,
            round(seconds, 4),
            round(counters / seconds),
            None,
            None,
        )
    )

    results.append(
        await _timed_one_by_one(
            backend, "append_presence_event", [append(n) for n in range(events)]
        )
    )

    # The writes really landed: one counters record per participant, every event in order.
    assert len(await store.list_presence_counters(session.id)) == participants
    stored = await store.list_presence_events(session.id)
    assert [e.at for e in stored] == [T0 + timedelta(milliseconds=n) for n in range(events)]
    return results


async def _run_on(backend: str, store: Store, args: argparse.Namespace) -> list[Result]:
    await store.open()
    try:
        return await bench(backend, store, args.counters, args.events, args.participants)
    finally:
        await store.close()


async def main_async(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        workdir = Path(tmp)
        sqlite_store = SqliteStore(workdir / "bench.sqlite3")
        results += await _run_on("sqlite", sqlite_store, args)
        with running_nx27017(workdir / "nx-27017") as server:
            results += await _run_on("nx27017", MongoStore(server.uri, "bench"), args)
        if args.mongodb_uri:
            db_name = f"bench_{uuid.uuid4().hex[:12]}"
            mongo = MongoStore(args.mongodb_uri, db_name)
            try:
                results += await _run_on("mongodb", mongo, args)
            finally:
                client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.mongodb_uri)
                await client.drop_database(db_name)
                await client.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--counters", type=int, default=10_000, help="put_presence_counters calls")
    parser.add_argument("--events", type=int, default=1_000, help="append_presence_event calls")
    parser.add_argument("--participants", type=int, default=30, help="participants in the session")
    parser.add_argument("--mongodb-uri", default=os.environ.get("MONGODB_URI", ""))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results = asyncio.run(main_async(args))
    for r in results:
        latency = f"  p50 {r.p50_ms:.3f} ms  p99 {r.p99_ms:.3f} ms" if r.p50_ms is not None else ""
        print(
            f"{r.backend:8} {r.operation:22} {r.mode:26} {r.ops:6} ops in {r.seconds:7.3f} s"
            f" = {r.ops_per_s:7.0f} ops/s{latency}"
        )
    if args.json:
        report = {
            "machine": {
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "sqlite": sqlite3.sqlite_version,
                "pymongo": version("pymongo"),
                "nx-27017": version("nx-27017"),
            },
            "params": {
                "counters": args.counters,
                "events": args.events,
                "participants": args.participants,
            },
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

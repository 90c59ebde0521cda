"""Soak: a class under churn, recorded on and off, for ``--minutes``; nothing may grow.

1 teacher + ``--students`` (14) on our server (``python -m api``, pinned to the first
core; this process, the synthetic class, on the second), every camera and microphone on,
driven by the load test (`scripts.load.runner.LoadRun`) with ``--churn`` (20) students a
minute leaving and rejoining after ``--churn-pause`` (2) s; the teacher records
``--record-seconds`` (20) of every ``--record-every`` (120) s through the REST API (each
stop starts a compose job). Every ``--interval`` (10) s a sample of the server
(`scripts.load.soak_series`): resident memory, file descriptors, sockets, threads, event
loop tasks, participants in the room, internal errors.

At the end: the series, and per series the median of the ``--span`` (120) s after the
``--warmup`` (300) s against the median of the last ``--span`` s, which the issue wants
within 5 %; server errors (internal errors answered, ERROR lines and tracebacks in the
server's log, failed joins, peers' ``ERROR`` events, recording calls refused); with
``--plot`` a PNG of the series (the ``plot`` extra).

    .venv/bin/python -m scripts.soak --minutes 30 --json artifacts/soak.json \\
        --plot artifacts/soak.png
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from scripts.bench.cli import run_report
from scripts.bench.systems import OurServer
from scripts.bench_side_by_side import Lab
from scripts.load.options import LoadOptions
from scripts.load.progress import Progress
from scripts.load.runner import LoadRun
from scripts.load.soak_series import (
    SoakSample,
    growth,
    plot_series,
    process_state,
    samples_json,
    scraped,
    series_table,
)
from scripts.synthpeer.api_client import ClassroomApi

LOG_ERRORS = (" ERROR ", " CRITICAL ", "Traceback (most recent call last)")


class SoakRun(LoadRun):
    """A `LoadRun` that samples the server and records on and off while it measures."""

    def __init__(self, options: LoadOptions, args: argparse.Namespace) -> None:
        super().__init__(options, Progress(options.progress))
        self.args = args
        self.samples: list[SoakSample] = []
        self.recordings: list[dict[str, Any]] = []
        self._recording = False

    async def _measure(self, monitor: Any) -> None:
        async with aiohttp.ClientSession() as http:
            api = ClassroomApi(self.options.url, http)
            started = time.monotonic()
            tasks = [
                asyncio.create_task(self._sample(http, started)),
                asyncio.create_task(self._record(api)),
            ]
            try:
                await super()._measure(monitor)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if self._recording:
                    await self._call(api, "stop")

    async def _sample(self, http: aiohttp.ClientSession, started: float) -> None:
        assert self.options.server_pid is not None
        while True:
            async with http.get(f"{self.options.url}/metrics") as response:
                metrics = scraped(await response.text())
            state = process_state(self.options.server_pid)
            self.samples.append(
                SoakSample(
                    at=round(time.monotonic() - started, 1),
                    rss_mb=state["rss_mb"],
                    fds=int(state["fds"]),
                    sockets=int(state["sockets"]),
                    threads=int(state["threads"]),
                    tasks=metrics["tasks"],
                    participants=metrics["participants"],
                    internal_errors=metrics["internal_errors"],
                    recording=self._recording,
                )
            )
            await asyncio.sleep(self.args.interval)

    async def _record(self, api: ClassroomApi) -> None:
        args = self.args
        while True:
            await asyncio.sleep(args.record_every - args.record_seconds)
            await self._call(api, "start")
            await asyncio.sleep(args.record_seconds)
            await self._call(api, "stop")

    async def _call(self, api: ClassroomApi, action: str) -> None:
        plan = self.plans[0]
        status, answer = await api.request(
            "POST", f"/class/{plan.class_id}/recordings/{action}", token=plan.teacher.token
        )
        self._recording = action == "start" and status == 201
        self.recordings.append({"action": action, "status": status, "error": answer.get("error")})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=30.0, help="the window, after settling")
    p.add_argument("--students", type=int, default=14)
    p.add_argument("--bitrate", type=int, default=500_000, help="camera bits/s")
    p.add_argument("--churn", type=float, default=20.0, help="students leaving a minute")
    p.add_argument("--churn-pause", type=float, default=2.0)
    p.add_argument("--record-every", type=float, default=120.0)
    p.add_argument("--record-seconds", type=float, default=20.0)
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=300.0, help="seconds not judged")
    p.add_argument("--span", type=float, default=120.0, help="seconds of each median")
    p.add_argument("--limit", type=float, default=0.05, help="growth allowed (0.05: 5 %%)")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None, help="a PNG of the series")
    args = p.parse_args(argv)
    if not 0 < args.record_seconds < args.record_every:
        p.error("--record-seconds must be > 0 and less than --record-every")
    return args


def log_errors(path: Path, offset: int) -> list[str]:
    """ERROR lines and tracebacks the server logged after `offset` bytes, each traceback
    as its ERROR line and the exception it ends with."""
    if not path.exists():
        return []
    with path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", "replace")
    found: list[str] = []
    in_traceback = False
    for line in text.splitlines():
        if any(mark in line for mark in LOG_ERRORS):
            in_traceback = line.startswith("Traceback")
            if not in_traceback:
                found.append(line)
        elif in_traceback and line and not line[0].isspace():
            found[-1:] = [f"{found[-1]} | {line}" if found else line]
            in_traceback = False
    return found


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        lab = Lab(args, Path(workdir))
        server = lab.system("ours")
        assert isinstance(server, OurServer)
        await server.start()
        log = server.data_dir / "server.log"
        offset = log.stat().st_size if log.exists() else 0
        try:
            options = LoadOptions(
                url=server.base_url,
                classes=1,
                students=args.students,
                bitrate=args.bitrate,
                duration=args.minutes * 60,
                churn=args.churn,
                churn_pause=args.churn_pause,
                server_pid=server.pid,
                progress=True,
            ).validate()
            run = SoakRun(options, args)
            summary = await run.run()
        finally:
            await server.stop()
        logged = log_errors(log, offset)
        if args.json is not None and log.exists():  # the whole log, next to the figures
            args.json.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, args.json.with_suffix(".server.log"))
    judged = growth(run.samples, args.warmup, args.span, args.limit)
    internal = run.samples[-1].internal_errors if run.samples else 0.0
    refused_recordings = [r for r in run.recordings if r["status"] >= 300]
    errors = {
        "internal_errors": internal,
        "log_errors": len(logged),
        "log_error_lines": logged[:20],
        "failed_joins": len(summary["joins"]["failures"]),
        "join_failures": summary["joins"]["failures"][:20],
        "joins_shed_and_retried": summary["joins"].get("shed_and_retried", 0),
        "peer_errors": summary["peer_errors"],
        "recording_calls_refused": refused_recordings,
    }
    clean = (
        not internal
        and not logged
        and not errors["failed_joins"]
        and not summary["peer_errors"]
        and not refused_recordings
    )
    every = max(1, len(run.samples) // 60)
    print(series_table(run.samples, every))
    for name, row in judged.get("series", {}).items():
        print(
            f"{name}: {row['after_warmup']} after warm-up, {row['at_end']} at the end, "
            f"growth {row['growth']} ({'within' if row['within'] else 'OVER'} the limit)"
        )
    print(
        f"server errors: {internal:.0f} internal, {len(logged)} logged, "
        f"{errors['failed_joins']} failed joins, {len(summary['peer_errors'])} peer ERRORs, "
        f"{len(refused_recordings)} recording calls refused; "
        f"{sum(1 for r in run.recordings if r['action'] == 'start')} recordings, "
        f"{summary['joins'].get('rejoins', 'n/a')} rejoins "
        f"({errors['joins_shed_and_retried']} refused as overloaded and retried)"
    )
    print(f"soak {'passed' if judged['passed'] and clean else 'FAILED'}")
    if args.plot is not None:
        plot_series(run.samples, args.plot, f"soak: 1 + {args.students}, churn {args.churn}/min")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": lab.machine(),
        "settings": {"command": "python -m scripts.soak " + " ".join(sys.argv[1:]), **vars(args)},
        "passed": bool(judged["passed"] and clean),
        "growth": judged,
        "errors": errors,
        "recordings": run.recordings,
        "joins": {k: v for k, v in summary["joins"].items() if k != "failures"},
        "samples": samples_json(run.samples),
    }


def main(argv: list[str] | None = None) -> None:
    report = run_report(main_async, parse_args(argv))
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":
    main()

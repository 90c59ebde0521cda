"""The real class: selective forwarding against everyone-gets-everything, interleaved.

1 teacher + ``--students`` (30) on our server (``python -m api``), held ``--seconds``
(300) per run, in two modes (`scripts.bench.classroom`):

- ``selective``: every camera in two layers (640x360 ``--high-bitrate``, 320x180
  ``--low-bitrate``), every microphone muted but the teacher's and ``--unmuted`` - 1
  students', the teacher sharing a screen, everyone subscribing like the page
  (``--tiles`` student cameras low);
- ``all``: today's page: one camera layer, no SUBSCRIPTION, every microphone on.

Runs alternate (selective, all, then all, selective...) ``--repeat`` times, each on a
fresh server process pinned to the first core; this process (the synthetic class) runs
on the second. Reported per run: server cores (CPU seconds from /proc of the server's
PID over the window), CPU per forwarded packet, each student's downstream bitrate
(p50/p95/max), hop latency p95, join -> first frame p95, failed connections and the load
generator's own cores; then selective / all of the median runs, refused when the load
generator was above 0.85 cores.

    .venv/bin/python -m scripts.bench_classroom --json artifacts/classroom.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.bench.classroom import (
    MODES,
    ClassResult,
    ClassSettings,
    comparison,
    medians,
    run_mode,
    table,
)
from scripts.bench.cli import run_report
from scripts.bench.systems import OurServer
from scripts.bench_side_by_side import Lab


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = ClassSettings()
    p.add_argument("--students", type=int, default=defaults.students)
    p.add_argument("--seconds", type=float, default=defaults.seconds, help="held per run")
    p.add_argument("--repeat", type=int, default=1, help="interleaved repetitions")
    p.add_argument("--modes", default=",".join(MODES), help="selective,all or one of them")
    p.add_argument("--tiles", type=int, default=defaults.tiles)
    p.add_argument("--unmuted", type=int, default=defaults.unmuted, help="teacher included")
    p.add_argument("--high-bitrate", type=int, default=defaults.high_bitrate)
    p.add_argument("--low-bitrate", type=int, default=defaults.low_bitrate)
    p.add_argument(
        "--muted-keep-sending",
        action="store_true",
        help="muted microphones keep sending (the server must drop them)",
    )
    p.add_argument("--settle-max", type=float, default=defaults.settle_max)
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    p.add_argument("--progress", action="store_true", help="live progress on stderr")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = ClassSettings(
        students=args.students,
        seconds=args.seconds,
        tiles=args.tiles,
        unmuted=args.unmuted,
        high_bitrate=args.high_bitrate,
        low_bitrate=args.low_bitrate,
        muted_keep_sending=args.muted_keep_sending,
        settle_max=args.settle_max,
        progress=args.progress,
    )
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"bench_classroom: unknown modes {sorted(unknown)}; known: {MODES}")
    results: list[ClassResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as workdir:
        lab = Lab(args, Path(workdir))
        server = lab.system("ours")
        assert isinstance(server, OurServer)
        for repetition in range(args.repeat):
            # ABBA: a drift over the invocation (thermal, neighbours) weighs on both modes.
            for mode in modes if repetition % 2 == 0 else modes[::-1]:
                _log(f"-- {mode} #{repetition + 1}: 1 teacher + {args.students} students")
                await server.start()
                try:
                    result = await run_mode(mode, repetition, server.base_url, server.pid, settings)
                finally:
                    await server.stop()
                _log(
                    f"   {result.server_cores} cores, {result.us_per_packet} us/pkt, "
                    f"student p50 {result.student_kbps['p50']} kbps, "
                    f"{result.failed_connections} failed, loadgen {result.loadgen_cores}"
                )
                results.append(result)
    compared = comparison(results)
    print(table(results, compared))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": lab.machine(),
        "settings": {
            "command": "python -m scripts.bench_classroom " + " ".join(sys.argv[1:]),
            **asdict(settings),
            "repeat": args.repeat,
            "modes": modes,
        },
        "comparison": compared,
        "medians": {mode: _run_json(r) for mode, r in medians(results).items()},
        "runs": [_run_json(r) for r in results],
    }


def _run_json(result: ClassResult) -> dict[str, Any]:
    data = asdict(result)
    data["bytes_per_student_second"] = result.bytes_per_student_second
    summary = data.pop("summary")
    # The per-stream rows and the timeline make a 31-person run's JSON huge: keep the rest.
    data["load_summary"] = {k: v for k, v in summary.items() if k not in ("per_stream",)}
    return data


def main(argv: list[str] | None = None) -> None:
    run_report(main_async, parse_args(argv))


if __name__ == "__main__":
    main()

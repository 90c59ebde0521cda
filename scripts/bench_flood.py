"""Flood isolation: one participant floods, do the others notice?

A class of 1 teacher + ``--students`` (10), every camera (``--bitrate``) and microphone
on, everyone receiving everyone, on a fresh server process per run (pinned to the first
core; this process, the synthetic class and the flooder, to the second). After the class
has settled one student floods its publish connection (`scripts.bench.flood`: its
camera at ``--factor`` times its rate (``rtp``), that much on an ``unknown_ssrc``, or
``--rtcp-rate`` receiver reports a second), or nobody does
(``none``). Runs are interleaved ``--repeat`` times, in ``--floods`` order then reversed.

Reported per run, over everyone but the flooder (as publisher and as subscriber): video
frame rate per stream (mean, p5), hop latency of the teacher's camera (p50, p95), video
loss; the server's cores and its ``classroom_refused_packets_total`` by reason; what
the flooder sent. Then each flood's median run against the baseline's (``none``): the
ratio of the others' fps and hop latency p95, which the issue wants within 10 %.

Server settings come from the environment like the server's own, e.g. a video cap twice
the camera's rate with ``MEDIA_VIDEO_MAX_KBPS=1000``, or none with ``=0``.

    .venv/bin/python -m scripts.bench_flood --json artifacts/flood.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from scripts.bench.cli import run_report
from scripts.bench.flood import FLOODS, FloodRun, FloodSettings, flood_options
from scripts.bench.systems import OurServer
from scripts.bench_side_by_side import Lab
from scripts.load.monitor import percentile

CAP_SETTINGS = (
    "MEDIA_VIDEO_MAX_KBPS",
    "MEDIA_VIDEO_MAX_PACKETS",
    "MEDIA_AUDIO_MAX_KBPS",
    "MEDIA_AUDIO_MAX_PACKETS",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = FloodSettings()
    p.add_argument("--students", type=int, default=defaults.students)
    p.add_argument("--seconds", type=float, default=defaults.seconds, help="window per run")
    p.add_argument("--repeat", type=int, default=1, help="interleaved repetitions")
    p.add_argument("--floods", default=",".join(FLOODS), help=f"some of {','.join(FLOODS)}")
    p.add_argument("--factor", type=int, default=defaults.factor)
    p.add_argument("--rtcp-rate", type=float, default=defaults.rtcp_rate)
    p.add_argument("--bitrate", type=int, default=defaults.bitrate, help="camera bits/s")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def refused_packets(url: str) -> dict[str, float]:
    """``classroom_refused_packets_total`` by reason, from the server's ``/metrics``."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        text = await response.text()
    refused: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("classroom_refused_packets_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            refused[reason] = float(value)
    return refused


def run_result(
    flood: str, repetition: int, run: FloodRun, summary: dict[str, Any], refused: dict[str, float]
) -> dict[str, Any]:
    """The numbers of one run, over everyone but the flooder."""
    others = [
        r for r in summary["per_stream"] if run.flooder_id not in (r["publisher"], r["subscriber"])
    ]
    video = [r for r in others if r["kind"] == "video"]
    fps = [r["fps"] for r in video]
    latency = run.others_latency_ms()
    expected = sum(r["expected"] for r in video)
    lost = sum(r["lost"] for r in video)
    flooder = run.flooder
    return {
        "flood": flood,
        "repetition": repetition,
        "streams": len(video),
        "fps_mean": round(statistics.fmean(fps), 2) if fps else None,
        "fps_p5": percentile(fps, 0.05),
        "latency_p50_ms": _rounded(percentile(latency, 0.5)),
        "latency_p95_ms": _rounded(percentile(latency, 0.95)),
        "latency_samples": len(latency),
        "video_loss": round(lost / expected, 5) if expected else None,
        "server_cores": summary["server"].get("cpu_cores_mean"),
        "loadgen_cores": summary["loadgen_cores_mean"],
        "refused": {k: v for k, v in refused.items() if v},
        "flooder_camera": run.camera_rate,
        "flood_sent": flooder.sent if flooder else 0,
        "flood_per_s": round(flooder.sent / flooder.seconds, 1)
        if flooder and flooder.seconds
        else 0,
        "flood_error": run.flood_error,
        "failed_connections": len(summary["joins"]["failures"]),
        "aborted": summary["aborted"],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per flood, the median over its runs against the baseline's, as ratios."""
    base = [r for r in results if r["flood"] == "none"]
    out: dict[str, Any] = {}
    for flood in dict.fromkeys(r["flood"] for r in results):
        if flood == "none" or not base:
            continue
        runs = [r for r in results if r["flood"] == flood]
        row: dict[str, Any] = {}
        for key in ("fps_mean", "fps_p5", "latency_p50_ms", "latency_p95_ms", "server_cores"):
            flooded, baseline = _median(runs, key), _median(base, key)
            row[key] = round(flooded / baseline, 3) if flooded is not None and baseline else None
        out[flood] = row
    return out


def table(results: list[dict[str, Any]], compared: dict[str, Any]) -> str:
    lines = [
        f"{'flood':<13} {'#':>2} {'streams':>7} {'fps mean/p5':>12} {'hop p50/p95 ms':>15} "
        f"{'loss':>7} {'cores':>6} {'sent/s':>7}  refused"
    ]
    for r in results:
        refused = ", ".join(f"{k} {int(v)}" for k, v in r["refused"].items()) or "-"
        lines.append(
            f"{r['flood']:<13} {r['repetition'] + 1:>2} {r['streams']:>7} "
            f"{r['fps_mean']!s:>6}/{r['fps_p5']!s:<5} "
            f"{r['latency_p50_ms']!s:>7}/{r['latency_p95_ms']!s:<7} "
            f"{r['video_loss']!s:>7} {r['server_cores']!s:>6} {r['flood_per_s']!s:>7}  {refused}"
        )
    for flood, row in compared.items():
        lines.append(
            f"{flood} / none: fps mean {row['fps_mean']}, fps p5 {row['fps_p5']}, "
            f"hop p50 {row['latency_p50_ms']}, p95 {row['latency_p95_ms']}, "
            f"server cores {row['server_cores']}"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = FloodSettings(
        students=args.students,
        seconds=args.seconds,
        factor=args.factor,
        rtcp_rate=args.rtcp_rate,
        bitrate=args.bitrate,
    )
    floods = [f.strip() for f in args.floods.split(",") if f.strip()]
    unknown = set(floods) - set(FLOODS)
    if unknown:
        raise SystemExit(f"bench_flood: unknown floods {sorted(unknown)}; known: {FLOODS}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as workdir:
        lab = Lab(args, Path(workdir))
        server = lab.system("ours")
        assert isinstance(server, OurServer)
        for repetition in range(args.repeat):
            for flood in floods if repetition % 2 == 0 else floods[::-1]:
                _log(f"-- {flood} #{repetition + 1}: 1 teacher + {args.students} students")
                await server.start()
                try:
                    run = FloodRun(
                        flood_options(server.base_url, server.pid, settings), flood, settings
                    )
                    summary = await run.run()
                    refused = await refused_packets(server.base_url)
                finally:
                    await server.stop()
                result = run_result(flood, repetition, run, summary, refused)
                _log(
                    f"   fps {result['fps_mean']}/{result['fps_p5']}, hop p95 "
                    f"{result['latency_p95_ms']} ms, {result['server_cores']} cores, "
                    f"flood {result['flood_per_s']}/s, refused {result['refused']}"
                )
                results.append(result)
    compared = compare(results)
    print(table(results, compared))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": lab.machine(),
        "settings": {
            "command": "python -m scripts.bench_flood " + " ".join(sys.argv[1:]),
            "students": settings.students,
            "seconds": settings.seconds,
            "factor": settings.factor,
            "rtcp_rate": settings.rtcp_rate,
            "bitrate": settings.bitrate,
            "server_env": {k: os.environ[k] for k in CAP_SETTINGS if k in os.environ},
            "floods": floods,
            "repeat": args.repeat,
        },
        "comparison": compared,
        "runs": results,
    }


def main(argv: list[str] | None = None) -> None:
    run_report(main_async, parse_args(argv))


if __name__ == "__main__":
    main()

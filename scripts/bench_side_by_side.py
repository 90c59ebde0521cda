"""Side-by-side benchmark: our SFU, aiortc MediaRelay, Janus VideoRoom and the floor.

One invocation, one machine, the same load generator (`scripts.bench.measure`) for all:
every server runs in its own process pinned to the first core, this process (publishers
and subscribers) to the second. Systems:

- ``ours``: the real server (``python -m api``) through the class WebSocket protocol,
  accounts and session included: what gets deployed.
- ``ours-router``: our bare `sfu.Router` behind `scripts/bench_server.py` (no control
  plane): the media plane alone, to show what the control plane adds;
  ``ours-router-python-receive`` the same receiving through aiortc's receiver and the
  Python assembler (as before the native receive path), ``ours-router-python`` without
  either C extension (the fallback).
- ``mediarelay``: aiortc's MediaRelay behind `scripts/bench_server.py` (decode once,
  encode per subscriber), what Python users do today.
- ``janus``: Janus 1.1.2 VideoRoom (Debian ``janus``) through its HTTP API, with
  ``event_loops = 1`` (its better setting on one core); ``janus-default`` keeps Janus'
  default one-thread-per-handle.
- the floor: SRTP protect + ``sendto`` of a 1100-byte packet in a tight loop.

Scenarios: 1 publisher -> N subscribers (VP8 640x360 30 fps ~770 kbps, video only) for
each N, repeated ``--repeat`` times interleaved (medians reported); ``--capacity`` grows
N per system until 30 fps / < 1 % loss no longer holds; ``--classroom`` runs 1 teacher +
M students all publishing cameras and receiving everyone.

As root it re-runs itself in a private network namespace (``unshare -n``) with a veth
pair, because Janus never gathers candidates on loopback; nothing leaves the namespace.

    sudo .venv/bin/python -m scripts.bench_side_by_side --json artifacts/side_by_side.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.bench import netns
from scripts.bench.floor import run_floor
from scripts.bench.measure import BenchSettings, RunResult, run_classroom, run_fanout
from scripts.bench.report import (
    comparison,
    comparison_refusal,
    comparison_table,
    median_runs,
    runs_table,
)
from scripts.bench.systems import BenchServer, JanusVideoRoom, OurServer, System
from scripts.synthpeer.media import EncodedClip, vp8_clip

ALL_SYSTEMS = (
    "ours",
    "ours-router",
    "ours-router-python-receive",
    "ours-router-before",
    "ours-router-no-handoff",
    "ours-router-python",
    "mediarelay",
    "janus",
    "janus-default",
)
ROUTER_MODES = {
    "ours-router": "sfu",
    "ours-router-python-receive": "sfu-python-receive",
    "ours-router-before": "sfu-before",
    "ours-router-no-handoff": "sfu-no-handoff",
    "ours-router-python": "sfu-python",
}
"""`scripts/bench_server.py` modes of the bare-Router systems: as configured by default,
receiving through aiortc and the Python assembler (the code before the native receive
path), with neither it nor the C fan-out (the code before issue 16), with every frame through
Python between the two (the code before the direct hand-off), and without either C
extension (the fallback)."""


def _ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--systems", default="ours,ours-router,mediarelay,janus")
    p.add_argument("--n", type=_ints, default=[1, 10, 50, 100], help="fan-out sizes")
    p.add_argument("--repeat", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--relay-max-n", type=int, default=10, help="MediaRelay saturates early")
    p.add_argument(
        "--capacity",
        type=_ints,
        default=[],
        help="extra fan-out sizes tried once per system, ascending, until one fails "
        "(e.g. 150,200,300; MediaRelay uses --relay-capacity)",
    )
    p.add_argument("--relay-capacity", type=_ints, default=[12, 14, 16, 20])
    p.add_argument("--classroom", type=int, default=0, help="participants (e.g. 31); 0: skip")
    p.add_argument("--classroom-systems", default="ours,janus")
    p.add_argument("--classroom-repeat", type=int, default=1)
    p.add_argument(
        "--classroom-bitrate",
        type=int,
        default=300_000,
        help="bits/s of each camera in the classroom (30 streams per receiver add up)",
    )
    p.add_argument("--resolution", default="640x360")
    p.add_argument("--bitrate", type=int, default=770_000)
    p.add_argument("--full-sample", type=int, default=5, help="fully received subscribers")
    p.add_argument("--no-netns", action="store_true", help="stay in this namespace (no Janus)")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--report-only",
        type=Path,
        default=None,
        help="print the tables of a saved --json file again, without running anything",
    )
    p.add_argument(netns.INSIDE_FLAG, action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Lab:
    """Where things run: cores, addresses, and a factory of fresh systems."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        self.server_cpu: int | None = None
        self.loadgen_cpu: int | None = None
        if len(cpus) >= 2 and not args.no_pin:
            self.server_cpu, self.loadgen_cpu = cpus[0], cpus[1]
            os.sched_setaffinity(0, {self.loadgen_cpu})
        self.isolated = bool(getattr(args, "inside_netns", False))
        self.server_address = netns.SERVER_ADDRESS if self.isolated else "127.0.0.1"
        self.client_address = netns.CLIENT_ADDRESS if self.isolated else "127.0.0.1"
        self.workdir = workdir
        self._ours: OurServer | None = None

    def machine(self) -> dict[str, Any]:
        """The machine and the placement, for a report's JSON."""
        return {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "server_cpu": self.server_cpu,
            "loadgen_cpu": self.loadgen_cpu,
            "network": "private netns, veth" if self.isolated else "loopback",
        }

    def system(self, name: str) -> System:
        if name == "ours":
            if self._ours is None:  # one data dir: accounts are made once per invocation
                self._ours = OurServer(
                    cpu=self.server_cpu,
                    address=self.server_address,
                    client_address=self.client_address,
                    data_dir=self.workdir / "ours",
                )
            return self._ours
        if name in ROUTER_MODES:
            return BenchServer(mode=ROUTER_MODES[name], cpu=self.server_cpu, name=name)
        if name == "mediarelay":
            return BenchServer(mode="relay", cpu=self.server_cpu, name=name)
        if name in ("janus", "janus-default"):
            if not self.isolated:
                raise RuntimeError("Janus needs the private network namespace (run as root)")
            return JanusVideoRoom(
                cpu=self.server_cpu,
                interface=netns.SERVER_INTERFACE,
                address=self.server_address,
                client_address=self.client_address,
                event_loops=1 if name == "janus" else None,
                name=name,
            )
        raise ValueError(f"unknown system {name!r}; known: {', '.join(ALL_SYSTEMS)}")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _run(lab: Lab, system: str, scenario: str, n: int, settings: BenchSettings) -> RunResult:
    started = time.monotonic()
    _log(f"-- {system} {scenario} N={n}")
    instance = lab.system(system)
    try:
        if scenario == "classroom":
            result = await run_classroom(instance, n, settings)
        else:
            result = await run_fanout(instance, n, settings)
    except Exception as error:  # one failed run must not lose the others
        _log(f"   failed: {error!r}")
        result = RunResult(system, scenario, n, n, 0, notes=[f"run failed: {error!r}"])
    _log(
        f"   {result.streams_flowing}/{result.streams_expected} flowing, "
        f"{result.server_cores:.3f} cores, {result.us_per_packet} us/pkt, "
        f"fps p5 {result.fps_p5}, loss {result.loss}, loadgen {result.loadgen_cores} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    width, height = (int(x) for x in args.resolution.lower().split("x"))
    settings = BenchSettings(
        clip=vp8_clip(150, width, height, 30, args.bitrate),
        classroom_clip=vp8_clip(150, width, height, 30, args.classroom_bitrate),
        seconds=args.seconds,
        warmup=args.warmup,
        full_sample=args.full_sample,
    )
    with tempfile.TemporaryDirectory(prefix="bench-sbs-") as workdir:
        lab = Lab(args, Path(workdir))
        if "ours" in systems:
            ours = lab.system("ours")
            assert isinstance(ours, OurServer)
            await ours.start()  # accounts for the largest fan-out, made before measuring
            await ours.prepare_students(max([*args.n, *args.capacity, args.classroom]))
            await ours.stop()
        runs: list[RunResult] = []
        floors: list[dict[str, Any]] = []
        for repetition in range(args.repeat):
            _log(f"== repetition {repetition + 1}/{args.repeat}")
            floors.append(await run_floor(lab.server_cpu, lab.client_address))
            for n in args.n:
                for system in systems:
                    if system == "mediarelay" and n > args.relay_max_n:
                        continue
                    runs.append(await _run(lab, system, "fanout", n, settings))
        for system in systems:
            sizes = args.relay_capacity if system == "mediarelay" else args.capacity
            for n in sizes:
                result = await _run(lab, system, "fanout", n, settings)
                runs.append(result)
                if not result.holds_target:
                    break
        if args.classroom:
            for _ in range(args.classroom_repeat):
                for system in args.classroom_systems.split(","):
                    if system in systems:
                        runs.append(await _run(lab, system, "classroom", args.classroom, settings))
        results = median_runs(runs)
        floor = sorted(floors, key=lambda f: f["protect_and_send"]["us_per_packet"])[
            len(floors) // 2
        ]
        refused = comparison_refusal(results, args.n)
        rows = [] if refused else comparison(results, floor, max(args.n))
        print("all runs:")
        print(runs_table(runs))
        print("\nmedians:")
        print(runs_table(results))
        if refused:
            print(f"\nno comparison: {refused}")
        else:
            print("\ncomparison (us/pkt = server CPU per packet received by subscribers):")
            print(comparison_table(rows))
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": lab.machine(),
            "settings": {
                "command": "python -m scripts.bench_side_by_side "
                + " ".join(a for a in sys.argv[1:] if a != netns.INSIDE_FLAG),
                "clip": _describe(settings.clip),
                "classroom_clip": _describe(settings.classroom_clip),
                "sizes": args.n,
                "seconds": args.seconds,
                "warmup": args.warmup,
                "repeat": args.repeat,
            },
            "comparison": rows,
            "comparison_refused": refused,
            "medians": [asdict(r) for r in results],
            "runs": [asdict(r) for r in runs],
            "floor_runs": floors,
        }


def _describe(clip: EncodedClip) -> str:
    return f"VP8 {clip.width}x{clip.height} {clip.fps} fps ~{clip.bitrate / 1000:.0f} kbps"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def report_only(path: Path, reference_n: int | None) -> None:
    """Re-print the medians and the comparison of a saved run (current report code)."""
    saved = json.loads(path.read_text())
    runs = [RunResult(**run) for run in saved["runs"]]
    floors = saved["floor_runs"]
    floor = sorted(floors, key=lambda f: f["protect_and_send"]["us_per_packet"])[len(floors) // 2]
    results = median_runs(runs)
    print(f"{saved['date']}  {saved['settings']['command']}")
    print(runs_table(results))
    print()
    refused = comparison_refusal(results, saved["settings"].get("sizes") or [reference_n])
    if refused:
        print(f"no comparison: {refused}")
    else:
        print(comparison_table(comparison(results, floor, reference_n)))


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.report_only is not None:
        report_only(args.report_only, max(args.n))
        return
    inside = bool(getattr(args, "inside_netns", False))
    if not inside and not args.no_netns and netns.can_unshare():
        netns.reexec_inside("scripts.bench_side_by_side", argv)
    if inside:
        netns.setup_links()
    report = asyncio.run(main_async(args))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

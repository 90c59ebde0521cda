"""Forwarding benchmark: 1 publisher, N subscribers, server in its own process.

For each N (default 1, 10, 50) and each mode (``sfu``: our encoded-frame forwarding on
its direct send path; ``sfu-aiortc``: the same Router on aiortc's stock sender path;
``relay``: aiortc's MediaRelay baseline, decoding once and re-encoding per subscriber;
``sfu-record``: ``sfu`` while recording every producer to disk; ``sfu-queued``: ``sfu``
with received packets going through aioice's queue and the DTLS task, as stock aiortc
does, instead of `MediaConfig.sync_receive`; ``sfu-python``: ``sfu`` without the C
extensions, `MediaConfig.native_send` and `native_receive` off (the Python fallback);
``sfu-python-receive``: ``sfu`` receiving through aiortc's receiver and the Python
assembler, `MediaConfig.native_receive` off; ``sfu-eager-reads``: ``sfu`` with every subscriber
datagram waking the event loop, `MediaConfig.coalesce_control_reads` off;
``sfu-per-consumer``: ``sfu`` with one C send call per consumer instead of the C fan-out,
`MediaConfig.native_fanout` off), a fresh
`scripts/bench_server.py` process hosts the room, pinned to core 0; this process
(the load generator, pinned to core 1) publishes a pre-encoded VP8 640x360 30 fps clip
and runs N subscribers that count frames without decoding (each decodes its first frames
to prove the stream is valid).

Measured over a window after a warm-up:
- server CPU seconds (psutil on the server pid, all threads) per forwarded RTP packet
  (packets counted at the subscribers), and cores used;
- subscriber frame rate (mean and worst);
- hop latency publisher -> server -> subscriber, p50/p95: send times are matched to
  received frames through the RTP timestamp pattern (see `SendLog`), which survives
  both forwarding and MediaRelay's re-encoding;
and the relay/sfu ratios. Prints a table; ``--json out.json`` writes the numbers.

    .venv/bin/python -m scripts.bench_forwarding --n 1,10,50 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from scripts.bench.medians import report_medians
from scripts.bench.signalling import Signalling
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import LatencyProbe, SendLog, vp8_clip
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig

CONFIG = MediaConfig(host_addresses=("127.0.0.1",), stats_interval=None)


@dataclass
class CaseResult:
    """The numbers of one (mode, N) run."""

    mode: str
    subscribers: int
    window_s: float
    server_cpu_s: float
    server_system_share: float
    """Share of the server's CPU spent in the kernel (socket sends and receives, mostly)."""
    cores: float
    forwarded_packets: int
    cpu_us_per_packet: float
    cpu_ms_per_subscriber_s: float
    fps_mean: float
    fps_min: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_samples: int
    decoded_sample_frames: int
    decode_errors: int
    loadgen_cores: float
    subscriber_losses: int
    server: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


async def run_case(
    mode: str,
    n: int,
    seconds: float,
    warmup: float,
    server_cpu: int | None,
    profile_dir: Path | None = None,
) -> CaseResult:
    command = [sys.executable, "-m", "scripts.bench_server", "--mode", mode]
    if server_cpu is not None:
        command += ["--cpu", str(server_cpu)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    clients: list[MediaClient] = []
    signalling: Signalling | None = None
    try:
        assert server.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, server.stdout.readline)
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench server did not start: {line!r}")
        signalling = await Signalling.connect(int(line.split()[1]))
        send_log = SendLog()
        sinks: list[StreamSink] = []
        probes: list[LatencyProbe] = []

        def sink_factory(kind: str, codec: str) -> StreamSink:
            probe = LatencyProbe(send_log)
            sink = StreamSink(kind, codec, decode="sample", sample_frames=10, probe=probe)
            if kind == "video":
                sinks.append(sink)
                probes.append(probe)
            return sink

        publisher = MediaClient(CONFIG, video=vp8_clip(), send_log=send_log)
        clients.append(publisher)
        await signalling.publish("publisher", publisher)
        for i in range(n):
            subscriber = MediaClient(CONFIG, sink_factory=sink_factory)
            clients.append(subscriber)
            signalling.subscribe(f"subscriber{i}", subscriber)
        deadline = time.monotonic() + 30
        while len(sinks) < n or any(s.frames == 0 for s in sinks):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {sum(s.frames > 0 for s in sinks)}/{n} subscribers receive"
                )
            await asyncio.sleep(0.05)
        await asyncio.sleep(warmup)

        process = psutil.Process(server.pid)
        me = psutil.Process()
        times_start = process.cpu_times()
        cpu_start = times_start.user + times_start.system
        me_start = sum(me.cpu_times()[:2])
        packets_start = [s.packets for s in sinks]
        frames_start = [s.frames for s in sinks]
        latency_start = [len(p.samples) for p in probes]
        spy: asyncio.subprocess.Process | None = None
        py_spy = _py_spy() if profile_dir is not None else None
        if profile_dir is not None and py_spy is not None:
            # sampling profile of the server over the window (collapsed stacks)
            out = profile_dir / f"server-{mode}-{n}"
            spy = await asyncio.create_subprocess_exec(
                py_spy,
                "record",
                "--nonblocking",
                "-p",
                str(server.pid),
                "-d",
                str(int(seconds)),
                "-r",
                "200",
                "--format",
                "raw",
                "-o",
                f"{out}.txt",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        started = time.monotonic()
        await asyncio.sleep(seconds)
        window = time.monotonic() - started
        times_end = process.cpu_times()
        cpu = times_end.user + times_end.system - cpu_start
        system = times_end.system - times_start.system
        loadgen = sum(me.cpu_times()[:2]) - me_start
        packets = sum(s.packets for s in sinks) - sum(packets_start)
        fps = [(s.frames - f0) / window for s, f0 in zip(sinks, frames_start, strict=True)]
        latencies = [
            sample * 1000
            for probe, l0 in zip(probes, latency_start, strict=True)
            for sample in probe.samples[l0:]
        ]
        if spy is not None:
            await spy.wait()
        server_stats = await signalling.server_stats()
        notes = list(signalling.errors)
        sizes = set().union(*(s.sizes for s in sinks))
        if sizes != {(640, 360)}:
            notes.append(f"decoded sizes {sorted(sizes)}")
        p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
        return CaseResult(
            mode=mode,
            subscribers=n,
            window_s=round(window, 2),
            server_cpu_s=round(cpu, 3),
            server_system_share=round(system / cpu, 2) if cpu else 0.0,
            cores=round(cpu / window, 3),
            forwarded_packets=packets,
            cpu_us_per_packet=round(cpu / packets * 1e6, 2) if packets else float("nan"),
            cpu_ms_per_subscriber_s=round(cpu / window / n * 1000, 2),
            fps_mean=round(statistics.fmean(fps), 1),
            fps_min=round(min(fps), 1),
            latency_p50_ms=None if p50 is None else round(p50, 2),
            latency_p95_ms=None if p95 is None else round(p95, 2),
            latency_samples=len(latencies),
            decoded_sample_frames=sum(s.decoded for s in sinks),
            decode_errors=sum(s.decode_errors for s in sinks),
            loadgen_cores=round(loadgen / window, 3),
            subscriber_losses=sum(s.losses for s in sinks),
            server=server_stats,
            notes=notes,
        )
    finally:
        if signalling is not None:
            await signalling.close()
        for client in clients:
            await client.close()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def print_table(results: list[CaseResult]) -> None:
    header = (
        f"{'mode':<15} {'N':>3} {'cores':>6} {'us/pkt':>7} {'ms/sub/s':>8} {'pkts':>7} "
        f"{'fps':>5} {'fpsmin':>6} {'p50ms':>6} {'p95ms':>6} {'lat#':>6} {'dec':>5} {'err':>3} "
        f"{'loadgen':>7} {'sys%':>4}"
    )
    print(header)
    for r in results:
        print(
            f"{r.mode:<15} {r.subscribers:>3} {r.cores:>6.3f} {r.cpu_us_per_packet:>7.2f} "
            f"{r.cpu_ms_per_subscriber_s:>8.2f} {r.forwarded_packets:>7} {r.fps_mean:>5.1f} "
            f"{r.fps_min:>6.1f} {r.latency_p50_ms or float('nan'):>6.2f} "
            f"{r.latency_p95_ms or float('nan'):>6.2f} {r.latency_samples:>6} "
            f"{r.decoded_sample_frames:>5} {r.decode_errors:>3} {r.loadgen_cores:>7.3f} "
            f"{r.server_system_share * 100:>4.0f}" + (f"  {'; '.join(r.notes)}" if r.notes else "")
        )


def ratios(results: list[CaseResult]) -> list[dict[str, Any]]:
    """relay/sfu per N: CPU per subscriber, CPU per packet, and the marginal cost."""
    by = {(r.mode, r.subscribers): r for r in results}
    out: list[dict[str, Any]] = []
    for (mode, n), sfu in sorted(by.items()):
        relay = by.get(("relay", n))
        if mode != "sfu" or relay is None:
            continue
        stock = by.get(("sfu-aiortc", n))
        out.append(
            {
                "subscribers": n,
                "cpu_per_subscriber_ratio": round(relay.cores / sfu.cores, 1)
                if sfu.cores
                else None,
                "cpu_per_packet_ratio": round(relay.cpu_us_per_packet / sfu.cpu_us_per_packet, 1),
                "stock_sender_over_direct": (
                    round(stock.cpu_us_per_packet / sfu.cpu_us_per_packet, 2) if stock else None
                ),
            }
        )
    ns = sorted({r.subscribers for r in results if ("relay", r.subscribers) in by})
    if len(ns) >= 2 and all(("sfu", n) in by for n in ns):
        low, high = ns[0], ns[-1]

        def marginal(mode: str) -> float:
            return (by[(mode, high)].cores - by[(mode, low)].cores) / (high - low)

        sfu_marginal = marginal("sfu")
        out.append(
            {
                "marginal_cores_per_subscriber": {
                    "sfu": round(sfu_marginal, 5),
                    "relay": round(marginal("relay"), 5),
                },
                "between": [low, high],
                "marginal_ratio": round(marginal("relay") / sfu_marginal, 1)
                if sfu_marginal > 0
                else None,
            }
        )
    for mode in sorted({r.mode for r in results}):
        points = sorted((r for r in results if r.mode == mode), key=lambda r: r.subscribers)
        if len(points) < 2:
            continue
        first, last = points[-2], points[-1]
        rate = [p.forwarded_packets / p.window_s for p in (first, last)]
        if rate[1] > rate[0]:
            out.append(
                {
                    "mode": mode,
                    "marginal_us_per_forwarded_packet": round(
                        (last.cores - first.cores) / (rate[1] - rate[0]) * 1e6, 2
                    ),
                    "between": [first.subscribers, last.subscribers],
                }
            )
    for n in sorted({r.subscribers for r in results}):
        plain, recorded = by.get(("sfu", n)), by.get(("sfu-record", n))
        if plain is not None and recorded is not None:
            out.append(
                {
                    "recording_overhead": {
                        "subscribers": n,
                        "cores_sfu": round(plain.cores, 4),
                        "cores_sfu_record": round(recorded.cores, 4),
                        "cores_difference": round(recorded.cores - plain.cores, 4),
                        "us_per_packet_difference": round(
                            recorded.cpu_us_per_packet - plain.cpu_us_per_packet, 2
                        ),
                    }
                }
            )
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu = loadgen_cpu = None
    if len(cpus) >= 2 and not args.no_pin:
        server_cpu, loadgen_cpu = cpus[0], cpus[1]
    _pin(loadgen_cpu)
    vp8_clip()  # encode the clip before any measurement
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    runs: list[CaseResult] = []
    for repetition in range(args.repeat):
        for n in args.n:
            for mode in args.modes:
                if mode == "relay" and n > args.relay_max_n:
                    continue
                print(f"-- run {repetition + 1}: {mode} N={n}", file=sys.stderr, flush=True)
                runs.append(
                    await run_case(mode, n, args.seconds, args.warmup, server_cpu, args.profile)
                )
    results = report_medians(
        runs,
        [(mode, n) for n in args.n for mode in args.modes],
        lambda r: (r.mode, r.subscribers),
        lambda r: r.cpu_us_per_packet,
        print_table,
    )
    summary = ratios(results)
    for line in summary:
        print(json.dumps(line))
    return {
        "config": {
            "n": args.n,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "server_cpu": server_cpu,
            "loadgen_cpu": loadgen_cpu,
            "clip": "VP8 640x360 30 fps ~770 kbps, pre-encoded",
        },
        "results": [asdict(r) for r in results],
        "runs": [asdict(r) for r in runs],
        "ratios": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50])
    parser.add_argument(
        "--modes", type=lambda s: s.split(","), default=["sfu", "sfu-aiortc", "relay"]
    )
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs of everything")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--relay-max-n",
        type=int,
        default=10,
        help="skip the baseline above this N (it saturates a core)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin server and load generator"
    )
    parser.add_argument("--json", default=None, help="write results to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="directory for py-spy stacks of the server over each window (pip install py-spy)",
    )
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

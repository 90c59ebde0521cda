"""The load generator and the measurement, identical for every system under test.

Publishers send the same pre-encoded VP8 clip (encoded once per process). Subscribers
are `CountingClient`s: every stream is counted from its RTP headers (packets, frames,
loss); a sample of them (`full_sample` subscribers, one stream each) is received whole
(the C receive path where it is built) for hop latency and a decoded sample. Server CPU
is read with psutil on the server's pid (all threads, user + system) over a window after
a warm-up; memory is its RSS.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from scripts.bench.systems import System
from scripts.load.counting import CountingClient, StreamCounter
from scripts.load.loadgen_guard import MAX_LOADGEN_CORES, generator_busy
from scripts.load.monitor import percentile
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import EncodedClip, LatencyProbe, SendLog
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig

TARGET_FPS = 28.5
"""A stream "holds 30 fps" when it delivers at least this many frames per second."""
MAX_LOSS = 0.01


@dataclass
class BenchSettings:
    """What every run shares."""

    clip: EncodedClip
    classroom_clip: EncodedClip
    seconds: float = 10.0
    warmup: float = 3.0
    full_sample: int = 5
    """Subscribers (fan-out) whose stream is received whole for latency and decoding."""
    connect_concurrency: int = 8
    settle_latency_ms: float = 100.0
    """After the warm-up, wait (up to `settle_max`) until the sampled hop latency p95 of
    the last second is below this: joins and renegotiations can leave a backlog that takes
    seconds to drain, and the window measures the steady state after it."""
    settle_max: float = 30.0


@dataclass
class RunResult:
    """One run of one system at one size."""

    system: str
    scenario: str
    n: int
    """Subscribers (fan-out) or participants (classroom)."""
    streams_expected: int
    streams_flowing: int
    window_s: float = 0.0
    server_cores: float = 0.0
    server_system_share: float = 0.0
    packets: int = 0
    us_per_packet: float | None = None
    fps_mean: float | None = None
    fps_p5: float | None = None
    fps_min: float | None = None
    loss: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_samples: int = 0
    rss_base_mb: float = 0.0
    rss_mb: float = 0.0
    mb_per_participant: float | None = None
    loadgen_cores: float = 0.0
    settle_s: float = 0.0
    """Time spent after the warm-up waiting for the latency backlog to drain."""
    decoded_frames: int = 0
    decode_errors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def holds_target(self) -> bool:
        """Every stream flowing at >= 28.5 fps (p5) with < 1 % loss."""
        return (
            self.streams_flowing == self.streams_expected
            and self.fps_p5 is not None
            and self.fps_p5 >= TARGET_FPS
            and self.loss is not None
            and self.loss < MAX_LOSS
        )


class _Load:
    """The clients of one run and what they count."""

    def __init__(self, settings: BenchSettings, clip: EncodedClip) -> None:
        self.settings = settings
        self.clip = clip
        self.counters: list[StreamCounter] = []
        self.clients: list[CountingClient] = []
        self.send_logs: dict[str, SendLog] = {}
        self.probes: list[LatencyProbe] = []

    def client(
        self,
        config: MediaConfig,
        name: str,
        *,
        full: bool,
        default_publisher: str | None,
        send_log: SendLog | None = None,
    ) -> CountingClient:
        client = CountingClient(
            config,
            subscriber=name,
            full_streams=1 if full else 0,
            on_counter=self.counters.append,
            default_publisher=default_publisher,
            video=self.clip if send_log is not None else None,
            send_log=send_log,
            sink_factory=lambda kind, codec: StreamSink(kind, codec, decode="sample"),
            paced=True,
        )
        self.clients.append(client)
        return client

    def flowing(self) -> int:
        return sum(1 for c in self.counters if c.kind == "video" and c.first_frame_at)

    def attach_probes(self) -> None:
        for client in self.clients:
            self.probes += client.attach_probes(self.send_logs)


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 1e6


def _cpu(process: psutil.Process) -> tuple[float, float]:
    times = process.cpu_times()
    return float(times.user), float(times.system)


async def _wait_flowing(load: _Load, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        flowing = load.flowing()
        if flowing >= expected or time.monotonic() > deadline:
            return flowing
        await asyncio.sleep(0.2)


async def _measure(
    system: System, load: _Load, result: RunResult, settings: BenchSettings
) -> RunResult:
    server = psutil.Process(system.pid)
    me = psutil.Process()
    await asyncio.sleep(settings.warmup)
    load.attach_probes()
    result.settle_s = await _settle(load, settings)
    result.rss_mb = round(_rss_mb(server), 1)
    video = [c for c in load.counters if c.kind == "video" and not c.closed]
    for counter in video:
        counter.mark("start")
    marks = {id(p): len(p.samples) for p in load.probes}
    user0, system0 = _cpu(server)
    mine0 = sum(_cpu(me))
    started = time.monotonic()
    await asyncio.sleep(settings.seconds)
    window = time.monotonic() - started
    user1, system1 = _cpu(server)
    mine1 = sum(_cpu(me))
    for counter in video:
        counter.mark("end")
    cpu = (user1 - user0) + (system1 - system0)
    fps, lost, expected, packets = [], 0, 0, 0
    for counter in video:
        start, end = counter.marks["start"], counter.marks["end"]
        fps.append((end["frames"] - start["frames"]) / window)
        packets += end["packets"] - start["packets"]
        expected += end["expected"] - start["expected"]
        lost += max(0, (end["expected"] - start["expected"]) - (end["packets"] - start["packets"]))
    latencies = [
        sample * 1000
        for probe in load.probes
        for sample in probe.samples[marks.get(id(probe), 0) :]
    ]
    sinks = [s for client in load.clients for s in client.video_sinks()]
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    result.window_s = round(window, 2)
    result.server_cores = round(cpu / window, 3)
    result.server_system_share = round((system1 - system0) / cpu, 2) if cpu else 0.0
    result.packets = packets
    result.us_per_packet = round(cpu / packets * 1e6, 2) if packets else None
    result.fps_mean = round(statistics.fmean(fps), 2) if fps else None
    result.fps_p5 = percentile(fps, 0.05)
    result.fps_min = round(min(fps), 2) if fps else None
    result.loss = round(lost / expected, 5) if expected else None
    result.latency_p50_ms = None if p50 is None else round(p50, 2)
    result.latency_p95_ms = None if p95 is None else round(p95, 2)
    result.latency_samples = len(latencies)
    result.loadgen_cores = round((mine1 - mine0) / window, 3)
    result.decoded_frames = sum(s.decoded for s in sinks)
    result.decode_errors = sum(s.decode_errors for s in sinks)
    if generator_busy(result.loadgen_cores):
        result.notes.append(
            f"load generator above {MAX_LOADGEN_CORES} cores: it, not the server, was measured"
        )
    if result.settle_s >= settings.settle_max:
        result.notes.append(f"latency did not settle below {settings.settle_latency_ms:g} ms")
    return result


async def _settle(load: _Load, settings: BenchSettings) -> float:
    """Wait until the last second's sampled hop latency p95 is under the limit."""
    started = time.monotonic()
    while time.monotonic() - started < settings.settle_max:
        marks = {id(p): len(p.samples) for p in load.probes}
        await asyncio.sleep(1.0)
        recent = [s for p in load.probes for s in p.samples[marks.get(id(p), 0) :]]
        p95 = percentile(recent, 0.95)
        if p95 is not None and p95 * 1000 < settings.settle_latency_ms:
            break
    else:
        return round(time.monotonic() - started, 1)
    return round(time.monotonic() - started - 1.0, 1)


async def _bounded(tasks: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(task: Any) -> Any:
        async with gate:
            return await task

    return await asyncio.gather(*(one(t) for t in tasks), return_exceptions=True)


async def run_fanout(system: System, n: int, settings: BenchSettings) -> RunResult:
    """One publisher, ``n`` subscribers."""
    load = _Load(settings, settings.clip)
    result = RunResult(system.name, "fanout", n, streams_expected=n, streams_flowing=0)
    await system.start()
    try:
        send_log = SendLog()

        def publisher(config: MediaConfig) -> MediaClient:
            return load.client(
                config, "publisher", full=False, default_publisher=None, send_log=send_log
            )

        await system.publish(publisher, "publisher")
        label = system.label("publisher")
        load.send_logs[label] = send_log
        await asyncio.sleep(1.0)
        result.rss_base_mb = round(_rss_mb(psutil.Process(system.pid)), 1)

        def subscriber(index: int) -> Any:
            def make(config: MediaConfig) -> MediaClient:
                return load.client(
                    config,
                    f"s{index}",
                    full=index < settings.full_sample,
                    default_publisher=label,
                )

            return make

        outcomes = await _bounded(
            [system.subscribe(subscriber(i), f"s{i}") for i in range(n)],
            settings.connect_concurrency,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            result.notes.append(f"{len(failures)} subscribers failed: {failures[0]!r}")
        result.streams_flowing = await _wait_flowing(load, n, 30 + 0.2 * n)
        await _measure(system, load, result, settings)
        result.mb_per_participant = (
            round((result.rss_mb - result.rss_base_mb) / n, 3) if n else None
        )
        return result
    finally:
        await system.stop()


async def run_classroom(system: System, participants: int, settings: BenchSettings) -> RunResult:
    """Everyone publishes a camera and receives everyone else."""
    load = _Load(settings, settings.classroom_clip)
    expected = participants * (participants - 1)
    result = RunResult(
        system.name, "classroom", participants, streams_expected=expected, streams_flowing=0
    )
    await system.start()
    try:
        result.rss_base_mb = round(_rss_mb(psutil.Process(system.pid)), 1)
        logs = {f"p{i}": SendLog() for i in range(participants)}

        def member(name: str) -> Any:
            def make(config: MediaConfig) -> MediaClient:
                return load.client(
                    config, name, full=True, default_publisher=None, send_log=logs[name]
                )

            return make

        outcomes = await _bounded(
            [system.join_classroom(member(name), name) for name in logs],
            settings.connect_concurrency // 2 or 1,
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            result.notes.append(f"{len(failures)} participants failed: {failures[0]!r}")
        await system.classroom_ready()
        for name, log in logs.items():
            load.send_logs[system.label(name)] = log
        result.streams_flowing = await _wait_flowing(load, expected, 30 + 0.1 * expected)
        await _measure(system, load, result, settings)
        result.mb_per_participant = round((result.rss_mb - result.rss_base_mb) / participants, 3)
        return result
    finally:
        await system.stop()

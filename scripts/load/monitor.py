"""Once a second: the server's ``/metrics``, the probes' latencies, the progress line."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from scripts.load.participant import LoadRegistry
from scripts.load.progress import Progress


@dataclass(frozen=True)
class ServerSample:
    """What one scrape of the server's ``/metrics`` said."""

    at: float
    cpu_seconds: float
    rss_bytes: float
    video_streams: int
    """Active video consumers: video streams the server is forwarding."""
    audio_streams: int
    participants: int


class ServerScraper:
    """Reads ``/metrics`` of the server under test (a bearer token if it needs one)."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, token: str | None = None
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/metrics"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.error: str | None = None

    async def scrape(self) -> ServerSample | None:
        try:
            async with self._session.get(
                self._url, headers=self._headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                text = await response.text()
                if response.status != 200:
                    self.error = f"/metrics answered {response.status}: {text[:120]}"
                    return None
        except (aiohttp.ClientError, TimeoutError) as error:
            self.error = f"/metrics unreachable: {type(error).__name__}: {error}"
            return None
        at = time.monotonic()
        values: dict[str, float] = {}
        streams = {"audio": 0.0, "video": 0.0}
        participants = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "classroom_consumers" and sample.labels.get("state") == "active":
                    streams[sample.labels.get("kind", "")] = sample.value
                elif sample.name == "classroom_participants":
                    participants += sample.value
                else:
                    values[sample.name] = sample.value
        self.error = None
        return ServerSample(
            at=at,
            cpu_seconds=values.get("process_cpu_seconds_total", 0.0),
            rss_bytes=values.get("process_resident_memory_bytes", 0.0),
            video_streams=int(streams["video"]),
            audio_streams=int(streams["audio"]),
            participants=int(participants),
        )


@dataclass(frozen=True)
class TimelinePoint:
    """One second of the run, for the plot and the JSON."""

    t: float
    phase: str
    joined: int
    streams: int
    server_cores: float | None
    server_rss_mb: float | None
    loadgen_cores: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1); `None` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class Monitor:
    """Samples everything once a second while the run goes through its phases."""

    def __init__(
        self,
        scraper: ServerScraper,
        registry: LoadRegistry,
        progress: Progress,
        *,
        participants: int,
    ) -> None:
        self.scraper = scraper
        self.registry = registry
        self.progress = progress
        self.participants = participants
        self.phase = "setup"
        self.done = 0.0
        self.total = 1.0
        self.joined = 0
        self.timeline: list[TimelinePoint] = []
        self.samples: list[ServerSample] = []
        self._start = time.monotonic()
        self._me = psutil.Process()
        self._my_cpu = self._cpu()
        self._my_at = time.monotonic()
        self._probe_seen: dict[int, int] = {}

    def _cpu(self) -> float:
        times = self._me.cpu_times()
        return float(times.user + times.system)

    def redraw(self) -> None:
        point = self.timeline[-1] if self.timeline else None
        detail = f"joined {self.joined}/{self.participants}"
        if point is not None:
            detail += f"  streams {point.streams}"
            if point.server_cores is not None:
                detail += f"  server {point.server_cores:.2f} cores {point.server_rss_mb:.0f} MB"
            detail += f"  loadgen {point.loadgen_cores:.2f}"
            if point.latency_p50_ms is not None:
                detail += f"  hop p50 {point.latency_p50_ms:.1f} ms"
        detail += f"  t={time.monotonic() - self._start:.0f}s"
        self.progress.show(self.phase, self.done, self.total, detail)

    async def sample(self) -> ServerSample | None:
        """Scrape the server now (also used at the edges of the measurement window)."""
        found = await self.scraper.scrape()
        if found is not None:
            self.samples.append(found)
        return found

    async def tick(self) -> None:
        previous = self.samples[-1] if self.samples else None
        server = await self.sample()
        now = time.monotonic()
        cores = rss = None
        if server is not None and previous is not None and server.at > previous.at:
            cores = (server.cpu_seconds - previous.cpu_seconds) / (server.at - previous.at)
        if server is not None:
            rss = server.rss_bytes / 1e6
        my_cpu = self._cpu()
        loadgen = (my_cpu - self._my_cpu) / max(1e-6, now - self._my_at)
        self._my_cpu, self._my_at = my_cpu, now
        self.registry.attach_probes()
        latencies = self._new_latencies()
        streams = (
            server.video_streams
            if server is not None
            else sum(1 for c in self.registry.counters if c.kind == "video" and not c.closed)
        )
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        self.timeline.append(
            TimelinePoint(
                t=round(now - self._start, 2),
                phase=self.phase,
                joined=self.joined,
                streams=streams,
                server_cores=None if cores is None else round(cores, 3),
                server_rss_mb=None if rss is None else round(rss, 1),
                loadgen_cores=round(loadgen, 3),
                latency_p50_ms=None if p50 is None else round(p50 * 1000, 2),
                latency_p95_ms=None if p95 is None else round(p95 * 1000, 2),
            )
        )
        self.redraw()

    def _new_latencies(self) -> list[float]:
        fresh: list[float] = []
        for probe in self.registry.probes:
            seen = self._probe_seen.get(id(probe), 0)
            fresh += probe.samples[seen:]
            self._probe_seen[id(probe)] = len(probe.samples)
        return fresh

    async def run(self, interval: float = 1.0) -> None:
        """Tick until cancelled."""
        while True:
            started = time.monotonic()
            await self.tick()
            await asyncio.sleep(max(0.05, interval - (time.monotonic() - started)))


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None

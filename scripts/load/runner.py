"""One load-test run: set up, ramp up, settle, measure (with churn), tear down."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
import psutil

from scripts.load.activity import ActivityRecord, ClassActivity
from scripts.load.counting import StreamCounter
from scripts.load.monitor import Monitor, ServerScraper
from scripts.load.options import LoadOptions
from scripts.load.participant import LoadPeer, LoadRegistry
from scripts.load.population import (
    ClassPlan,
    SetupFailure,
    build_population,
    end_sessions,
    setup_steps,
)
from scripts.load.progress import Progress
from scripts.load.summary import Window, summarize
from scripts.synthpeer.api_client import ClassroomApi
from scripts.synthpeer.media import EncodedClip, opus_tone, screen_clip, vp8_clip

GC_THRESHOLD = 20_000
"""Allocations between collections of the youngest generation while a run lasts."""


def _cpu_seconds(pid: int | None = None) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class Clips:
    """The media of a run, encoded once: camera (layer high), layer low, screen."""

    camera: EncodedClip | None
    low: EncodedClip | None = None
    screen: EncodedClip | None = None

    @classmethod
    def for_options(cls, options: LoadOptions) -> Clips:
        if not options.video:
            return cls(None)
        return cls(
            vp8_clip(
                options.clip_frames, options.width, options.height, options.fps, options.bitrate
            ),
            vp8_clip(options.clip_frames, 320, 180, options.fps, options.low_bitrate, "thumbnail")
            if options.layers == 2
            else None,
            screen_clip() if options.screen else None,
        )


def _peers(
    api: ClassroomApi,
    plans: list[ClassPlan],
    options: LoadOptions,
    clips: Clips,
    registry: LoadRegistry,
) -> list[LoadPeer]:
    """Everyone, in join order: teachers of every class first, then students round-robin."""
    rows: list[list[LoadPeer]] = []
    for plan in plans:
        rows.append(
            [
                LoadPeer(
                    api,
                    account,
                    plan,
                    publishes=options.publishes(index),
                    options=options,
                    clip=clips.camera,
                    registry=registry,
                    low_clip=clips.low,
                    screen_clip=clips.screen if index == 0 else None,
                    microphone_on=options.microphone_on(index),
                )
                for index, account in enumerate(plan.members)
            ]
        )
    longest = max((len(row) for row in rows), default=0)
    return [row[i] for i in range(longest) for row in rows if i < len(row)]


class LoadRun:
    """The phases of one run; `run()` returns the summary (also when aborted)."""

    def __init__(self, options: LoadOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.registry = LoadRegistry()
        self.window = Window()
        self.plans: list[ClassPlan] = []
        self.setup_failures: list[SetupFailure] = []
        self.peers: list[LoadPeer] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.settle_s = 0.0
        self.activity = ActivityRecord()

    async def run(self) -> dict[str, Any]:
        options = self.options
        clips = Clips.for_options(options)
        opus_tone()  # encode the audio loop once, before anything is measured
        # Every participant keeps a WebSocket open: no pool limit (aiohttp's default is 100).
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            api = ClassroomApi(options.url, session)
            monitor = Monitor(
                ServerScraper(session, options.url, options.metrics_token),
                self.registry,
                self.progress,
                participants=options.participants,
            )
            ticker = asyncio.create_task(monitor.run())
            aborted: str | None = None
            thresholds = gc.get_threshold()
            # Thousands of short-lived objects per second and few cycles: collecting the
            # youngest generation every 700 allocations was ~7 % of the generator's CPU.
            gc.set_threshold(GC_THRESHOLD, *thresholds[1:])
            try:
                async with asyncio.timeout(options.deadline):
                    await self._setup(api, monitor, clips)
                    await self._ramp(monitor)
                    await self._settle(monitor)
                    await self._measure(monitor)
            except TimeoutError:
                aborted = f"hard time limit of {options.deadline:.0f} s reached"
                if self.window.start and not self.window.end:
                    self.window.end = time.monotonic()
            finally:
                monitor.phase = "teardown"
                await self._teardown(api)
                ticker.cancel()
                gc.unfreeze()
                gc.set_threshold(*thresholds)
                await asyncio.gather(ticker, return_exceptions=True)
                self.progress.finish()
            return summarize(
                options,
                options.participants,
                self.setup_failures,
                self.registry,
                monitor,
                self.window,
                aborted,
                self.settle_s,
                self.activity if self._drives_activity() else None,
            )

    async def _setup(self, api: ClassroomApi, monitor: Monitor, clips: Clips) -> None:
        options = self.options
        monitor.total = setup_steps(options.classes, options.students)

        def advanced(done: int) -> None:
            monitor.done = done

        self.plans, self.setup_failures = await build_population(
            api,
            options.classes,
            options.students,
            concurrency=options.setup_concurrency,
            on_progress=advanced,
        )
        self.peers = _peers(api, [p for p in self.plans if p.live], options, clips, self.registry)

    async def _ramp(self, monitor: Monitor) -> None:
        monitor.phase, monitor.done, monitor.total = "ramp", 0, max(1, len(self.peers))
        started = time.monotonic()
        joins: list[asyncio.Task[Any]] = []

        def finished(task: asyncio.Task[Any]) -> None:
            monitor.done += 1
            monitor.joined = sum(p.joined for p in self.peers)

        for index, peer in enumerate(self.peers):
            delay = started + index / self.options.ramp - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(peer.join())
            task.add_done_callback(finished)
            joins.append(task)
        await asyncio.gather(*joins)

    async def _settle(self, monitor: Monitor) -> None:
        """Until every stream has shown a frame, no new stream appeared for 1 s, and the
        last second's hop latency p95 is under ``settle_latency_ms`` (joins can leave a
        backlog that takes seconds to drain; the window measures the steady state)."""
        monitor.phase = "settle"
        started = time.monotonic()
        count, stable_since = -1, time.monotonic()
        peers = {p.user_id: p for p in self.peers}
        while time.monotonic() - started < self.options.settle_max:
            open_counters = [c for c in self.registry.counters if not c.closed]
            if len(open_counters) != count:
                count, stable_since = len(open_counters), time.monotonic()
            all_flowing = all(
                c.first_frame_at is not None or self._silent(c, peers) for c in open_counters
            )
            latest = monitor.timeline[-1] if monitor.timeline else None
            if not self.registry.probes:  # nothing fully received: no latency to wait for
                settled = True
            else:  # a second without samples is a stall, not a settled stream
                p95 = latest.latency_p95_ms if latest is not None else None
                settled = p95 is not None and p95 < self.options.settle_latency_ms
            if all_flowing and settled and time.monotonic() - stable_since >= 1.0:
                break
            await asyncio.sleep(0.25)
        self.settle_s = round(time.monotonic() - started, 1)

    def _silent(self, counter: StreamCounter, peers: dict[str, LoadPeer]) -> bool:
        """A stream meant to carry nothing: a muted microphone, a camera asked off."""
        if counter.source == "microphone" and counter.publisher in self.registry.muted:
            return True
        subscriber = peers.get(counter.subscriber)
        return subscriber is not None and subscriber.asked_off(counter.publisher, counter.source)

    async def _measure(self, monitor: Monitor) -> None:
        options = self.options
        self.registry.attach_probes()
        gc.collect()
        gc.freeze()  # the class's long-lived objects: not traversed again by full collections
        for counter in self.registry.counters:
            if not counter.closed:
                counter.mark("start")
        self.window.probe_marks = {id(p): len(p.samples) for p in self.registry.probes}
        self.window.server_start = await monitor.sample()
        cpu_start = _cpu_seconds()
        if options.server_pid is not None:
            self.window.server_proc_start = _cpu_seconds(options.server_pid), time.monotonic()
        self.window.start = time.monotonic()
        monitor.phase, monitor.done, monitor.total = "measure", 0, options.duration
        background = [self._churn()] if options.churn > 0 else []
        if self._drives_activity():
            background += [activity.run() for activity in self._class_activities()]
        tasks = [asyncio.create_task(work) for work in background]
        try:
            while (elapsed := time.monotonic() - self.window.start) < options.duration:
                monitor.done = elapsed
                await asyncio.sleep(min(0.5, options.duration - elapsed))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.window.end = time.monotonic()
        if options.server_pid is not None:
            self.window.server_proc_end = _cpu_seconds(options.server_pid), time.monotonic()
        for counter in self.registry.counters:
            if not counter.closed:
                counter.mark("end")
        self.window.loadgen_cpu = _cpu_seconds() - cpu_start
        for peer in self.peers:
            peer.collect_subscription()
        self.window.server_end = await monitor.sample()
        await self._drain()

    def _drives_activity(self) -> bool:
        options = self.options
        return options.chat_rate > 0 or options.hand_rate > 0 or options.poll_every > 0

    def _class_activities(self) -> list[ClassActivity]:
        activities = []
        for index, plan in enumerate(p for p in self.plans if p.live):
            members = [peer for peer in self.peers if peer.plan is plan]
            teacher = next((m for m in members if m.account.role == "teacher"), None)
            if teacher is None:
                continue
            activities.append(
                ClassActivity(
                    teacher,
                    [m for m in members if m is not teacher],
                    self.activity,
                    chat_rate=self.options.chat_rate,
                    hand_rate=self.options.hand_rate,
                    poll_every=self.options.poll_every,
                    seed=self.options.seed * 1000 + index,
                )
            )
        return activities

    async def _churn(self) -> None:
        """Random students leave and rejoin, ``churn`` times a minute on average."""
        chooser = random.Random(self.options.seed)
        while True:
            await asyncio.sleep(chooser.expovariate(self.options.churn / 60.0))
            candidates = [p for p in self.peers if p.joined and p.account.role == "student"]
            if candidates:
                self._spawn(chooser.choice(candidates).churn(self.options.churn_pause))

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def wrapped() -> None:
            await work

        task = asyncio.create_task(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        """Wait a little for churn rejoins still running."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.options.join_timeout)
            for task in self._tasks:
                task.cancel()

    async def _teardown(self, api: ClassroomApi) -> None:
        for task in list(self._tasks):
            task.cancel()
        for peer in self.peers:
            peer.collect_errors()
        gate = asyncio.Semaphore(32)

        async def close(peer: LoadPeer) -> None:
            async with gate:
                await peer.close()

        await asyncio.gather(*(close(p) for p in self.peers), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(end_sessions(api, self.plans), 30)

"""Is the server saturated? Measured by its event loop's lag: a task that sleeps a fixed
interval wakes late by how long the loop was busy with other work. When the median lag of
the last `window` seconds is above `limit`, the server is overloaded: new room joins are
refused with a clear error (instead of joining and then timing out for everyone) and
``/health`` says so, until the lag falls back under the limit."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Callable

OVERLOADED = "Server overloaded, try again shortly"
DEFAULT_LAG_LIMIT_MS = 250
"""What `Settings.overload_lag_ms` None means (tests lower it to 0 for the servers they run
in their own process, whose event loop their clients share)."""


def lag_limit_ms(configured: int | None) -> int:
    """The lag limit in ms a server runs with (0: shedding off)."""
    return DEFAULT_LAG_LIMIT_MS if configured is None else configured


class LoadWatch:
    """Samples the event loop's lag every `interval` seconds while `run` runs."""

    def __init__(
        self,
        limit: float = 0.25,
        window: float = 3.0,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._window = window
        self._interval = interval
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None

    def record(self, at: float, lag: float) -> None:
        """One sample: at `at`, the loop ran `lag` seconds late."""
        self._samples.append((at, lag))
        while self._samples and self._samples[0][0] < at - self._window:
            self._samples.popleft()

    @property
    def lag(self) -> float:
        """The median lag of the window's samples, in seconds (0 without samples)."""
        if not self._samples:
            return 0.0
        return statistics.median(lag for _, lag in self._samples)

    @property
    def overloaded(self) -> bool:
        return self.lag > self.limit

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="load-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            started = self._clock()
            await asyncio.sleep(self._interval)
            woke = self._clock()
            self.record(woke, max(0.0, woke - started - self._interval))

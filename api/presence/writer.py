"""The task that writes a room's presence through its buffer, and every room's backlog
(``GET /health``, and what is left when the server stops)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..errors import ApiError
from ..models import ActivityEvent, PresenceCounters, PresenceEvent
from ..store import Store
from ..store.outage import outage_error
from .buffer import BufferStats, PresenceBuffer, PresenceWrite, already_stored

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0
"""Backoff between attempts while the store is unavailable: 0.1 s, doubled up to 2 s,
on top of what each failed attempt waits itself (``MONGODB_TIMEOUT_SECONDS``,
``SQLITE_BUSY_TIMEOUT_SECONDS``)."""


class PresenceWriter:
    """Writes one room's presence to the store in the order it happened.

    Writes wait in a `PresenceBuffer`; one task writes the first and forgets it only once
    the store has acknowledged it. While the store is unavailable (unreachable, locked or
    full: `api.store.outage`) that write is retried with backoff and everything after it
    waits behind it, so the store receives them in order with their own timestamps. A
    retried event is first looked for in the store, so an attempt whose reply was lost
    does not store it twice. A failure that is not an outage (a bug) is logged, counted
    as ``failed`` and skipped, so it cannot hold back the rest.
    """

    def __init__(self, store: Store, buffer: PresenceBuffer, name: str) -> None:
        self._store = store
        self.buffer = buffer
        self.name = name
        self.outage: ApiError | None = None
        """What the store answered the last attempt, while it is unavailable."""
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        """Set whenever the first write is stored (or the task ends): drains look again."""
        self._closing = False
        self._failures = 0
        """Attempts the store refused as unavailable, since the start."""
        self._task = asyncio.create_task(self._run(), name=f"presence-writer-{name}")

    def push(self, write: PresenceWrite) -> None:
        self.buffer.push(write)
        self._wake.set()

    async def drain(self, timeout: float, *, patient: bool = False) -> bool:
        """Wait until everything pushed so far is stored; False if not, after `timeout` or
        (unless `patient`) as soon as the store refuses one more attempt: it is still
        unavailable, and a client hears so now, not after the whole timeout. The writes
        stay buffered and keep being retried either way; what is pushed meanwhile (the
        next heartbeat) is not waited for."""
        mark, failures = self.buffer.mark(), self._failures
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not (
                    self.buffer.written_through(mark)
                    or self._task.done()
                    or (self._failures > failures and not patient)
                ):
                    self._progress.clear()
                    await self._progress.wait()
        return self.buffer.written_through(mark)

    def close(self) -> None:
        """Nothing more will be pushed: the task ends once everything is stored."""
        self._closing = True
        self._wake.set()

    @property
    def finished(self) -> bool:
        return self._task.done()

    async def stop(self) -> int:
        """Stop writing (the server stops); how many writes were still waiting, lost."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        lost = len(self.buffer)
        if lost:
            log.error(
                "presence of session %s: %d write(s) not stored before the server stopped "
                "(the store was unavailable); a restart closes open intervals at the last "
                "stored heartbeat",
                self.name,
                lost,
            )
        return lost

    async def _run(self) -> None:
        try:
            await self._write_all()
        finally:
            self._progress.set()

    async def _write_all(self) -> None:
        delay = RETRY_FIRST_SECONDS
        while True:
            write = self.buffer.head()
            if write is None:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._write(write)
            except Exception as error:
                outage = outage_error(error)
                if outage is None:
                    log.exception("could not persist presence for session %s", self.name)
                    self.buffer.stats.failed += 1
                    self.buffer.written()
                    self._progress.set()
                    continue
                if self.outage is None:
                    log.warning(
                        "presence of session %s is buffered: the store is unavailable (%s)",
                        self.name,
                        error,
                    )
                self.outage = outage
                self.buffer.head_uncertain = True
                self._failures += 1
                self._progress.set()
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_SECONDS)
                continue
            self.buffer.written()
            self._progress.set()
            if self.outage is not None:
                log.info(
                    "presence of session %s: the store is back, %d buffered write(s) to go",
                    self.name,
                    len(self.buffer),
                )
                self.outage = None
            delay = RETRY_FIRST_SECONDS

    async def _write(self, write: PresenceWrite) -> None:
        if isinstance(write, PresenceCounters):
            await self._store.put_presence_counters(write)  # a replace: twice is once
            return
        if isinstance(write, ActivityEvent):
            if self.buffer.head_uncertain and await self._mark_stored(write):
                return
            await self._store.append_activity(write)
            return
        if self.buffer.head_uncertain and await self._stored(write):
            return
        await self._store.append_presence_event(write)

    async def _mark_stored(self, mark: ActivityEvent) -> bool:
        stored = await self._store.list_activity(mark.session_id, [mark.kind])
        return any(event.id == mark.id for event in stored)

    async def _stored(self, event: PresenceEvent) -> bool:
        events = await self._store.list_presence_events(event.session_id, event.user_id)
        return already_stored(events[-1] if events else None, event)


class PresenceBacklog:
    """Every room's presence writer and what their buffers gave up, for ``/health``."""

    def __init__(self) -> None:
        self.stats = BufferStats()
        self._writers: set[PresenceWriter] = set()

    def add(self, writer: PresenceWriter) -> None:
        self._writers.add(writer)

    def _live(self) -> list[PresenceWriter]:
        self._writers = {writer for writer in self._writers if not writer.finished}
        return list(self._writers)

    def snapshot(self) -> dict[str, Any]:
        """``{pending, oldestSeconds, merged, dropped, failed}`` over every room."""
        writers = self._live()
        ages = [age for w in writers if (age := w.buffer.oldest_age()) is not None]
        return {
            "pending": sum(len(writer.buffer) for writer in writers),
            "oldestSeconds": round(max(ages), 3) if ages else None,
            "merged": self.stats.merged,
            "dropped": self.stats.dropped,
            "failed": self.stats.failed,
        }

    async def close(self, timeout: float) -> int:
        """The server stops: wait up to `timeout` for what is buffered, then give up on
        the rest; how many writes were lost."""
        writers = self._live()
        await asyncio.gather(*(writer.drain(timeout, patient=True) for writer in writers))
        lost = [await writer.stop() for writer in writers]
        return sum(lost)

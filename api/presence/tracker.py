"""One room's presence bookkeeping: events as they happen, counters every second,
and the active speaker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import ApiError, ServiceUnavailable
from ..ids import UserId
from ..models import (
    ActivityKind,
    AttendanceSession,
    PresenceCounters,
    PresenceEvent,
    PresenceKind,
    new_activity,
)
from ..store import Store
from ..store.outage import STORE_UNAVAILABLE
from ..timeutil import utcnow
from .buffer import PresenceBuffer
from .writer import PresenceBacklog, PresenceWriter

log = logging.getLogger(__name__)

MediaProbe = Callable[[UserId], tuple[bool, bool]]
"""``(camera_on, mic_on)`` for a user right now: frames flowing and not muted."""
SpeakerAnnouncer = Callable[[UserId], None]


@dataclass
class _Totals:
    camera_ms: int = 0
    mic_ms: int = 0
    talk_ms: int = 0
    connected: bool = False
    dirty: bool = True
    level: int = -127
    level_at: float = float("-inf")
    camera_on: bool = False
    talking: bool = False
    loud_at: float = float("-inf")
    loud_wall: datetime | None = None
    """The last audio level at or above the talk threshold (monotonic, and wall clock)."""


@dataclass(frozen=True)
class PresenceTiming:
    """How often the tracker samples and writes, what counts as talking, and how much it
    keeps (and how long it waits for the store) while the store is unavailable."""

    flush_interval: float = 1.0
    speaker_interval: float = 0.5
    talk_threshold_dbov: int = -50
    audio_level_interval: float = 0.2
    talk_hold_seconds: float = 1.0
    """Talking ends on the timeline after this long below the threshold (pauses between
    words do not split a span)."""
    buffer_max: int = 10_000
    grace_seconds: float = 15.0
    """The presence grace window: reconnects within it may be merged in a full buffer."""
    drain_seconds: float = 10.0
    """How long the session's end waits for buffered presence before it is refused (the
    server's is the store's timeout plus the longest retry backoff)."""


class PresenceTracker:
    """Writes a session's presence to the store as it happens.

    Connect/disconnect events are appended in order by one writer task
    (`api.presence.writer`), so listener callbacks (which must not block) only enqueue;
    while the store is unavailable the writes wait in a bounded buffer and are written
    in order once it is back. Every ``flush_interval`` the counters of connected users
    are written with ``last_seen_at`` = now: that is the heartbeat a restart closes open
    intervals at, so a crash loses at most about one interval (and what was buffered).
    The same writer records when a member's camera and talking turn on and off
    (``camera`` and ``talking`` activity marks), the participation timeline's spans.
    """

    def __init__(
        self,
        store: Store,
        session: AttendanceSession,
        probe: MediaProbe,
        announce_speaker: SpeakerAnnouncer,
        timing: PresenceTiming | None = None,
        backlog: PresenceBacklog | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._probe = probe
        self._announce = announce_speaker
        self.timing = timing or PresenceTiming()
        self._totals: dict[UserId, _Totals] = {}
        backlog = backlog or PresenceBacklog()
        buffer = PresenceBuffer(
            limit=self.timing.buffer_max,
            grace=timedelta(seconds=self.timing.grace_seconds),
            stats=backlog.stats,
        )
        self._writer = PresenceWriter(store, buffer, session.id)
        backlog.add(self._writer)
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"presence-tick-{session.id}")
        self._speaker: UserId | None = None
        self._closed = False
        self._accepting = True
        """False once `close` has queued the last events: later input is not recorded."""

    async def restore(self) -> None:
        """Continue the totals already stored for this session (after a restart)."""
        for counters in await self._store.list_presence_counters(self._session.id):
            totals = self._totals.setdefault(counters.user_id, _Totals())
            totals.camera_ms += counters.camera_ms
            totals.mic_ms += counters.mic_ms
            totals.talk_ms += counters.talk_ms

    # -- inputs from the room (synchronous, never block) ---------------------
    def connected(self, user_id: UserId) -> None:
        if not self._accepting:
            return
        totals = self._totals.setdefault(user_id, _Totals())
        if not totals.connected:
            totals.connected = True
            self._event(user_id, "connected", None)

    def disconnected(self, user_id: UserId, reason: str) -> None:
        totals = self._totals.get(user_id)
        if self._accepting and totals is not None and totals.connected:
            totals.connected = False
            totals.dirty = True
            self._queue_counters(user_id, totals)
            now = utcnow()
            if totals.camera_on:
                totals.camera_on = False
                self._mark(user_id, "camera", False, now)
            if totals.talking:
                totals.talking = False
                self._mark(user_id, "talking", False, self._talk_end(totals, now))
            self._event(user_id, "disconnected", reason)
            if self._speaker == user_id:
                self._speaker = None

    def audio_level(self, user_id: UserId, level_dbov: int) -> None:
        totals = self._totals.get(user_id)
        if totals is None or not totals.connected:
            return
        totals.level, totals.level_at = level_dbov, time.monotonic()
        if level_dbov >= self.timing.talk_threshold_dbov:
            totals.talk_ms += round(self.timing.audio_level_interval * 1000)
            totals.dirty = True
            totals.loud_at, totals.loud_wall = totals.level_at, utcnow()
            if not totals.talking:
                totals.talking = True
                self._mark(user_id, "talking", True, totals.loud_wall)

    def totals(self, user_id: UserId) -> tuple[int, int, int]:
        """``(camera_ms, mic_ms, talk_ms)`` so far."""
        totals = self._totals.get(user_id, _Totals())
        return totals.camera_ms, totals.mic_ms, totals.talk_ms

    # -- loops ----------------------------------------------------------------
    def _event(self, user_id: UserId, kind: PresenceKind, reason: str | None) -> None:
        self._writer.push(
            PresenceEvent(
                session_id=self._session.id,
                class_id=self._session.class_id,
                user_id=user_id,
                kind=kind,
                at=utcnow(),
                reason=reason,
            )
        )

    def _mark(self, user_id: UserId, kind: ActivityKind, on: bool, at: datetime) -> None:
        self._writer.push(new_activity(self._session, user_id, kind, {"on": on}, at))

    def _talk_end(self, totals: _Totals, now: datetime) -> datetime:
        """When the last loud sample's interval ended (not later than `now`)."""
        if totals.loud_wall is None:
            return now
        return min(now, totals.loud_wall + timedelta(seconds=self.timing.audio_level_interval))

    def _follow_media(self, user_id: UserId, totals: _Totals, camera: bool, now: float) -> None:
        if camera != totals.camera_on:
            totals.camera_on = camera
            self._mark(user_id, "camera", camera, utcnow())
        if totals.talking and now - totals.loud_at > self.timing.talk_hold_seconds:
            totals.talking = False
            self._mark(user_id, "talking", False, self._talk_end(totals, utcnow()))

    def _queue_counters(self, user_id: UserId, totals: _Totals) -> None:
        totals.dirty = False
        self._writer.push(
            PresenceCounters(
                session_id=self._session.id,
                class_id=self._session.class_id,
                user_id=user_id,
                camera_ms=totals.camera_ms,
                mic_ms=totals.mic_ms,
                talk_ms=totals.talk_ms,
                last_seen_at=utcnow(),
            )
        )

    async def _tick_loop(self) -> None:
        flush, speaker = self.timing.flush_interval, self.timing.speaker_interval
        step = min(flush, speaker)
        last_flush = last_sample = time.monotonic()
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            elapsed_ms = round((now - last_sample) * 1000)
            last_sample = now
            for user_id, totals in self._totals.items():
                if totals.connected:
                    camera, mic = self._probe(user_id)
                    totals.camera_ms += elapsed_ms if camera else 0
                    totals.mic_ms += elapsed_ms if mic else 0
                    self._follow_media(user_id, totals, camera, now)
            self._pick_speaker(now)
            if now - last_flush >= flush - 1e-3:
                last_flush = now
                for user_id, totals in self._totals.items():
                    if totals.connected or totals.dirty:
                        self._queue_counters(user_id, totals)

    def _pick_speaker(self, now: float) -> None:
        recent = [
            (totals.level, user_id)
            for user_id, totals in self._totals.items()
            if totals.connected
            and now - totals.level_at <= 1.0
            and totals.level >= self.timing.talk_threshold_dbov
        ]
        if recent:
            loudest = max(recent)[1]
            if loudest != self._speaker:
                self._speaker = loudest
                self._announce(loudest)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self, reason: str = "room closed") -> None:
        """Close every open presence at now and queue the last counters, then stop taking
        input; idempotent. What is queued keeps being written (`drain` waits for it)."""
        if self._closed:
            return
        self._closed = True
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        for user_id in list(self._totals):
            self.disconnected(user_id, reason)
        self._accepting = False
        self._writer.close()

    async def drain(self) -> None:
        """Wait until every presence write so far is stored; raise the store's condition
        (503, 507) if it is still unavailable after ``timing.drain_seconds``. Nothing is
        lost either way: what waits stays buffered and keeps being retried."""
        if not await self._writer.drain(self.timing.drain_seconds):
            outage = self._writer.outage
            error: ApiError = (
                type(outage)(outage.message) if outage else ServiceUnavailable(STORE_UNAVAILABLE)
            )
            raise error

    @property
    def pending_writes(self) -> int:
        """Presence writes not stored yet."""
        return len(self._writer.buffer)

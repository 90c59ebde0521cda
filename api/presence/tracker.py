"""One room's presence bookkeeping: events as they happen, counters every second,
and the active speaker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..ids import UserId
from ..models import AttendanceSession, PresenceCounters, PresenceEvent, PresenceKind
from ..store import Store
from ..timeutil import utcnow

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


@dataclass(frozen=True)
class PresenceTiming:
    """How often the tracker samples and writes, and what counts as talking."""

    flush_interval: float = 1.0
    speaker_interval: float = 0.5
    talk_threshold_dbov: int = -50
    audio_level_interval: float = 0.2


class PresenceTracker:
    """Writes a session's presence to the store as it happens.

    Connect/disconnect events are appended in order by one writer task, so listener
    callbacks (which must not block) only enqueue. Every ``flush_interval`` the counters
    of connected users are written with ``last_seen_at`` = now: that is the heartbeat a
    restart closes open intervals at, so a crash loses at most about one interval.
    """

    def __init__(
        self,
        store: Store,
        session: AttendanceSession,
        probe: MediaProbe,
        announce_speaker: SpeakerAnnouncer,
        timing: PresenceTiming | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._probe = probe
        self._announce = announce_speaker
        self.timing = timing or PresenceTiming()
        self._totals: dict[UserId, _Totals] = {}
        self._writes: asyncio.Queue[PresenceEvent | PresenceCounters | None] = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name=f"presence-{session.id}")
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"presence-tick-{session.id}")
        self._speaker: UserId | None = None
        self._closed = False

    async def restore(self) -> None:
        """Continue the totals already stored for this session (after a restart)."""
        for counters in await self._store.list_presence_counters(self._session.id):
            totals = self._totals.setdefault(counters.user_id, _Totals())
            totals.camera_ms += counters.camera_ms
            totals.mic_ms += counters.mic_ms
            totals.talk_ms += counters.talk_ms

    # -- inputs from the room (synchronous, never block) ---------------------
    def connected(self, user_id: UserId) -> None:
        totals = self._totals.setdefault(user_id, _Totals())
        if not totals.connected:
            totals.connected = True
            self._event(user_id, "connected", None)

    def disconnected(self, user_id: UserId, reason: str) -> None:
        totals = self._totals.get(user_id)
        if totals is not None and totals.connected:
            totals.connected = False
            totals.dirty = True
            self._queue_counters(user_id, totals)
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

    def totals(self, user_id: UserId) -> tuple[int, int, int]:
        """``(camera_ms, mic_ms, talk_ms)`` so far."""
        totals = self._totals.get(user_id, _Totals())
        return totals.camera_ms, totals.mic_ms, totals.talk_ms

    # -- loops ----------------------------------------------------------------
    def _event(self, user_id: UserId, kind: PresenceKind, reason: str | None) -> None:
        self._writes.put_nowait(
            PresenceEvent(
                session_id=self._session.id,
                class_id=self._session.class_id,
                user_id=user_id,
                kind=kind,
                at=utcnow(),
                reason=reason,
            )
        )

    def _queue_counters(self, user_id: UserId, totals: _Totals) -> None:
        totals.dirty = False
        self._writes.put_nowait(
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

    async def _write_loop(self) -> None:
        while True:
            item = await self._writes.get()
            if item is None:
                return
            try:
                if isinstance(item, PresenceEvent):
                    await self._store.append_presence_event(item)
                else:
                    await self._store.put_presence_counters(item)
            except Exception:
                log.exception("could not persist presence for session %s", self._session.id)

    async def close(self, reason: str = "room closed") -> None:
        """Close every open presence at now, write the last counters, stop; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        for user_id in list(self._totals):
            self.disconnected(user_id, reason)
        self._writes.put_nowait(None)
        await self._writer

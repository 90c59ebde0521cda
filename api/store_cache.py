"""A read-through cache in front of the store for what every class event reads again.

A student's ``MY_ATTENDANCE`` needs the class (to check the enrolment), its active session,
the student's presence, counters and mark: five reads, each a hop to the store's thread
or server and most of the event's cost, and they rarely change. `CachedStore` keeps those
answers in memory and drops each one when a write through it may change it, so a
check made from the cache is the check the store would have answered.

It relies on this process being the only one writing the classes, sessions, marks and
presence it serves (its rooms write the presence): true of a single server, not of a
cluster's nodes, which run without it (``api.app``). A store
call that fails (an outage) empties the whole cache, so what the store cannot confirm is
asked of it again, and the client hears of the outage as it did without a cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Any, Generic, TypeVar

from .errors import ApiError
from .models import (
    AttendanceMark,
    AttendancePolicy,
    AttendanceSession,
    ClassRecord,
    PresenceCounters,
    PresenceEvent,
    SessionSummary,
)
from .store import Store

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

DEFAULT_ENTRIES = 4096
"""Answers kept per kind (classes, active sessions, marks, ...): the least recently used
goes first. A school's live lessons need a few per student."""


class CachedAnswers(Generic[K, V]):
    """Bounded answers of one kind of read, with an epoch that every change bumps.

    A read stores its answer only if the epoch did not move while it waited for the
    store: an answer read before a concurrent write may be older than the write.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._answers: OrderedDict[K, V] = OrderedDict()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: K) -> bool:
        return key in self._answers

    def get(self, key: K) -> V:
        self._answers.move_to_end(key)
        return self._answers[key]

    def put(self, key: K, value: V, epoch: int) -> None:
        if epoch != self.epoch:
            return
        self._answers[key] = value
        self._answers.move_to_end(key)
        if len(self._answers) > self._limit:
            self._answers.popitem(last=False)

    def drop(self, key: K) -> None:
        self._answers.pop(key, None)
        self.epoch += 1

    def clear(self) -> None:
        self._answers.clear()
        self.epoch += 1


class CachedStore(Store):
    """A `Store` that delegates to ``inner`` and answers repeated reads from memory.

    Cached: ``get_class`` (found classes), ``get_active_session`` (``None`` too),
    ``get_mark``, ``list_marks``, ``list_presence_events`` and ``list_presence_counters``.
    Every other method is passed through (generated below the class).
    """

    def __init__(self, inner: Store, limit: int = DEFAULT_ENTRIES) -> None:
        self.inner = inner
        self._classes: CachedAnswers[str, ClassRecord] = CachedAnswers(limit)
        self._active: CachedAnswers[str, AttendanceSession | None] = CachedAnswers(limit)
        self._marks: CachedAnswers[tuple[str, str], AttendanceMark | None] = CachedAnswers(limit)
        self._mark_lists: CachedAnswers[str, tuple[AttendanceMark, ...]] = CachedAnswers(limit)
        self._events: CachedAnswers[tuple[str, str | None], tuple[PresenceEvent, ...]] = (
            CachedAnswers(limit)
        )
        self._counters: CachedAnswers[tuple[str, str | None], tuple[PresenceCounters, ...]] = (
            CachedAnswers(limit)
        )
        self._all: tuple[CachedAnswers[Any, Any], ...] = (
            self._classes,
            self._active,
            self._marks,
            self._mark_lists,
            self._events,
            self._counters,
        )

    @classmethod
    def wrap(cls, inner: Store, limit: int = DEFAULT_ENTRIES) -> CachedStore:
        return cls(inner, limit)

    def clear(self) -> None:
        for answers in self._all:
            answers.clear()

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ApiError:  # a rule of the store (Conflict, NotFound): it answered
            raise
        except Exception:
            self.clear()
            raise

    async def _read(
        self, answers: CachedAnswers[K, V], key: K, load: Callable[[], Awaitable[V]]
    ) -> V:
        if key in answers:
            return answers.get(key)
        epoch = answers.epoch
        value = await self._call(load())
        answers.put(key, value, epoch)
        return value

    async def _write(self, call: Callable[[], Awaitable[T]], *drops: Callable[[], None]) -> T:
        # Dropped before (no reader is answered the old value once the write has begun)
        # and after (the epoch moves again: a read that overlapped the write keeps nothing).
        for drop in drops:
            drop()
        try:
            return await self._call(call())
        finally:
            for drop in drops:
                drop()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        self.clear()
        await self.inner.close()

    # -- classes ------------------------------------------------------------
    async def get_class(self, class_id: str) -> ClassRecord | None:
        if class_id in self._classes:
            return self._classes.get(class_id)
        epoch = self._classes.epoch
        cls = await self._call(self.inner.get_class(class_id))
        if cls is not None:  # an unknown id is not kept: anyone can ask for many
            self._classes.put(class_id, cls, epoch)
        return cls

    async def add_student(self, class_id: str, student_id: str) -> ClassRecord:
        return await self._write(
            lambda: self.inner.add_student(class_id, student_id),
            lambda: self._classes.drop(class_id),
        )

    async def update_class_settings(
        self,
        class_id: str,
        *,
        policy: AttendancePolicy | None = None,
        allow_student_recordings: bool | None = None,
        allow_student_screen_share: bool | None = None,
        allow_student_unmute: bool | None = None,
    ) -> ClassRecord:
        return await self._write(
            lambda: self.inner.update_class_settings(
                class_id,
                policy=policy,
                allow_student_recordings=allow_student_recordings,
                allow_student_screen_share=allow_student_screen_share,
                allow_student_unmute=allow_student_unmute,
            ),
            lambda: self._classes.drop(class_id),
        )

    # -- attendance sessions ------------------------------------------------
    async def get_active_session(self, class_id: str) -> AttendanceSession | None:
        return await self._read(
            self._active, class_id, lambda: self.inner.get_active_session(class_id)
        )

    async def start_session(
        self, *, class_id: str, teacher_id: str, started_at: datetime
    ) -> AttendanceSession:
        return await self._write(
            lambda: self.inner.start_session(
                class_id=class_id, teacher_id=teacher_id, started_at=started_at
            ),
            lambda: self._active.drop(class_id),
        )

    async def place_session(self, session_id: str, node_id: str) -> None:
        # Which class it belongs to is not known here; a placement is once per session.
        await self._write(lambda: self.inner.place_session(session_id, node_id), self._active.clear)

    async def end_session(
        self, session_id: str, *, ended_at: datetime, summary: SessionSummary
    ) -> AttendanceSession:
        # Which class it belongs to is not known here; ending a session is rare.
        return await self._write(
            lambda: self.inner.end_session(session_id, ended_at=ended_at, summary=summary),
            self._active.clear,
        )

    # -- marks --------------------------------------------------------------
    async def get_mark(self, session_id: str, student_id: str) -> AttendanceMark | None:
        return await self._read(
            self._marks,
            (session_id, student_id),
            lambda: self.inner.get_mark(session_id, student_id),
        )

    async def list_marks(self, session_id: str) -> list[AttendanceMark]:
        async def load() -> tuple[AttendanceMark, ...]:
            return tuple(await self.inner.list_marks(session_id))

        marks = await self._read(self._mark_lists, session_id, load)
        return list(marks)

    async def put_mark(self, mark: AttendanceMark) -> None:
        await self._write(
            lambda: self.inner.put_mark(mark),
            lambda: self._marks.drop((mark.session_id, mark.student_id)),
            lambda: self._mark_lists.drop(mark.session_id),
        )

    # -- presence -----------------------------------------------------------
    async def list_presence_events(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceEvent]:
        async def load() -> tuple[PresenceEvent, ...]:
            return tuple(await self.inner.list_presence_events(session_id, user_id))

        events = await self._read(self._events, (session_id, user_id), load)
        return list(events)

    async def append_presence_event(self, event: PresenceEvent) -> None:
        await self._write(
            lambda: self.inner.append_presence_event(event),
            lambda: self._events.drop((event.session_id, event.user_id)),
            lambda: self._events.drop((event.session_id, None)),
        )

    async def list_presence_counters(
        self, session_id: str, user_id: str | None = None
    ) -> list[PresenceCounters]:
        async def load() -> tuple[PresenceCounters, ...]:
            return tuple(await self.inner.list_presence_counters(session_id, user_id))

        counters = await self._read(self._counters, (session_id, user_id), load)
        return list(counters)

    async def put_presence_counters(self, counters: PresenceCounters) -> None:
        await self._write(
            lambda: self.inner.put_presence_counters(counters),
            lambda: self._counters.drop((counters.session_id, counters.user_id)),
            lambda: self._counters.drop((counters.session_id, None)),
        )


def _passed_through(name: str) -> Callable[..., Awaitable[Any]]:
    async def method(self: CachedStore, *args: Any, **kwargs: Any) -> Any:
        return await self._call(getattr(self.inner, name)(*args, **kwargs))

    method.__name__ = name
    method.__qualname__ = f"CachedStore.{name}"
    method.__doc__ = getattr(Store, name).__doc__
    return method


for _name in sorted(Store.__abstractmethods__ - set(vars(CachedStore))):
    setattr(CachedStore, _name, _passed_through(_name))
CachedStore.__abstractmethods__ = frozenset()

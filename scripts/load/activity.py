"""Classroom tools under load: chat, raised hands and polls sent over the class WebSocket
while the media runs, and what the room made of them.

Per class, during the window: students chat (``chat_rate`` messages a minute each, at
random moments) and raise hands (``hand_rate``); the teacher lowers every hand and runs a
poll every ``poll_every`` seconds (open for ``min(10, poll_every / 2)``), which every
student in the room votes in. Each peer's
socket observes the room's events (they are not kept, so a long run does not grow), which
gives the chat's delivery latency at every receiver, hands heard by the teacher, and per
poll the votes acknowledged (``POLL_VOTED``) next to the counts of its ``POLL_RESULT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

from scripts.load.participant import LoadPeer
from scripts.synthpeer.api_client import ClassSocket

POLL_OPTIONS = ["yes", "no", "not sure"]


@dataclass
class PollRecord:
    """One poll of the run: who was told their vote was stored, and the room's result."""

    poll_id: str
    started_at: float
    acknowledged: set[str] = field(default_factory=set)
    result_total: int | None = None
    result_voters: int | None = None


@dataclass
class ActivityRecord:
    """What the classroom tools did in a run, over every class."""

    chat_sent: int = 0
    chat_to_teacher: int = 0
    chat_latency_s: list[float] = field(default_factory=list)
    """From a student's ``CHAT`` to each receiver's copy of it (the sender's included)."""
    hands_raised: int = 0
    hands_heard: int = 0
    hands_lowered: int = 0
    polls: list[PollRecord] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    """Monotonic send time by message text (each text is unique)."""


class ClassActivity:
    """Drives one class's tools; `run()` until cancelled."""

    def __init__(
        self,
        teacher: LoadPeer,
        students: list[LoadPeer],
        record: ActivityRecord,
        *,
        chat_rate: float,
        hand_rate: float,
        poll_every: float,
        seed: int,
    ) -> None:
        self.teacher = teacher
        self.students = students
        self.record = record
        self.chat_rate = chat_rate
        self.hand_rate = hand_rate
        self.poll_every = poll_every
        self.poll_open_s = min(10.0, poll_every / 2)
        self._random = random.Random(seed)
        self._numbers = itertools.count()
        self._observed: set[int] = set()
        self._polls: dict[str, PollRecord] = {}
        self._hands_up: set[str] = set()
        """Whose hand the teacher has heard raised and not lowered (a raise of a hand
        already up is no event)."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loops = []
        if self.chat_rate > 0:
            loops.append(self._every(self.chat_rate, self._chat))
        if self.hand_rate > 0:
            loops.append(self._every(self.hand_rate, self._raise_hand, hands=True))
        if self.poll_every > 0:
            loops.append(self._poll_loop())
        try:
            await asyncio.gather(*loops)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- what each socket sees ----------------------------------------------------
    def _socket(self, peer: LoadPeer) -> ClassSocket | None:
        """`peer`'s socket if it is in the room, its observers registered once."""
        socket = peer.peer.socket
        if socket is None or socket.closed or not peer.joined:
            return None
        if id(socket) not in self._observed:
            self._observed.add(id(socket))
            self._observe(peer, socket)
        return socket

    def _observe(self, peer: LoadPeer, socket: ClassSocket) -> None:
        is_teacher = peer is self.teacher
        user = peer.user_id
        record = self.record

        def chat(data: dict[str, Any]) -> None:
            sent = record.sent_at.get(str(data.get("text")))
            if sent is not None:
                record.chat_latency_s.append(time.monotonic() - sent)
                if is_teacher:
                    record.chat_to_teacher += 1

        def hand(data: dict[str, Any]) -> None:
            if not is_teacher:
                return
            if data.get("raised") is True:
                record.hands_heard += 1
                self._hands_up.add(str(data.get("userId")))
            elif data.get("raised") is False:
                record.hands_lowered += 1
                self._hands_up.discard(str(data.get("userId")))

        def voted(data: dict[str, Any]) -> None:
            poll = self._polls.get(str(data.get("pollId")))
            if poll is not None:
                poll.acknowledged.add(user)

        def started(data: dict[str, Any]) -> None:
            if not is_teacher:
                self._spawn(self._vote(peer, str(data.get("pollId"))))

        def result(data: dict[str, Any]) -> None:
            poll = self._polls.get(str(data.get("pollId")))
            if is_teacher and poll is not None:
                poll.result_total = sum(int(c) for c in data.get("counts") or [])
                poll.result_voters = int(data.get("voters") or 0)

        for event, observer in (
            ("CHAT", chat),
            ("HAND", hand),
            ("POLL_VOTED", voted),
            ("POLL_STARTED", started),
            ("POLL_RESULT", result),
        ):
            socket.observe(event, observer)

    # -- what the class does ------------------------------------------------------
    async def _every(self, per_student_minute: float, act: Any, *, hands: bool = False) -> None:
        while True:
            rate = per_student_minute * max(1, len(self.students)) / 60.0
            await asyncio.sleep(self._random.expovariate(rate))
            present = [s for s in self.students if self._socket(s) is not None]
            if hands:
                present = [s for s in present if s.user_id not in self._hands_up]
            self._socket(self.teacher)
            if present:
                self._spawn(act(self._random.choice(present)))

    async def _chat(self, student: LoadPeer) -> None:
        socket = self._socket(student)
        if socket is None:
            return
        text = f"load message {next(self._numbers)} from {student.user_id}"
        self.record.sent_at[text] = time.monotonic()
        self.record.chat_sent += 1
        with contextlib.suppress(ConnectionError):
            await socket.send("CHAT", {"text": text})

    async def _raise_hand(self, student: LoadPeer) -> None:
        socket = self._socket(student)
        if socket is not None and student.user_id not in self._hands_up:
            self._hands_up.add(student.user_id)  # until the teacher hears otherwise
            self.record.hands_raised += 1
            with contextlib.suppress(ConnectionError):
                await socket.send("HAND", {"raised": True})

    async def _poll_loop(self) -> None:
        open_for = self.poll_open_s
        while True:
            await asyncio.sleep(self.poll_every - open_for)
            socket = self._socket(self.teacher)
            for student in self.students:
                self._socket(student)
            if socket is None:
                continue
            poll_id = await self._start_poll(socket)
            if poll_id is None:
                continue
            poll = PollRecord(poll_id, time.monotonic())
            self._polls[poll_id] = poll
            self.record.polls.append(poll)
            await asyncio.sleep(open_for)
            with contextlib.suppress(ConnectionError):
                await socket.send("POLL_END", {"pollId": poll_id})
                await socket.send("HAND_LOWER", {"all": True})

    async def _start_poll(self, socket: ClassSocket) -> str | None:
        """The new poll's id, once the room has it (None if it did not come)."""
        question = f"Poll {next(self._numbers)}: ready to go on?"
        seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def started(data: dict[str, Any]) -> None:
            if data.get("question") == question and not seen.done():
                seen.set_result(str(data.get("pollId")))

        socket.observe("POLL_STARTED", started)
        try:
            await socket.send("POLL_START", {"question": question, "options": POLL_OPTIONS})
            return await asyncio.wait_for(seen, 10)
        except (TimeoutError, ConnectionError):
            return None
        finally:
            socket.observers["POLL_STARTED"].remove(started)

    async def _vote(self, student: LoadPeer, poll_id: str) -> None:
        # Within the first half of the poll's time: a vote after POLL_END is refused.
        await asyncio.sleep(self._random.uniform(0.1, max(0.2, self.poll_open_s / 2)))
        socket = self._socket(student)
        if socket is not None:
            option = self._random.randrange(len(POLL_OPTIONS))
            with contextlib.suppress(ConnectionError):
                await socket.send("POLL_VOTE", {"pollId": poll_id, "option": option})

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def activity_summary(record: ActivityRecord, percentile: Any) -> dict[str, Any]:
    """The record as JSON-ready numbers (`percentile(values, q)` from the monitor)."""
    latency = record.chat_latency_s

    def ms(q: float) -> float | None:
        value = percentile(latency, q)
        return None if value is None else round(value * 1000, 2)

    ended = [p for p in record.polls if p.result_total is not None]
    return {
        "chat": {
            "sent": record.chat_sent,
            "delivered_to_teacher": record.chat_to_teacher,
            "deliveries": len(latency),
            "latency_ms": {"p50": ms(0.5), "p95": ms(0.95), "max": ms(1.0)},
        },
        "hands": {
            "raised": record.hands_raised,
            "heard_by_teacher": record.hands_heard,
            "lowered": record.hands_lowered,
        },
        "polls": {
            "run": len(record.polls),
            "ended": len(ended),
            "votes_acknowledged": sum(len(p.acknowledged) for p in record.polls),
            "result_votes": sum(p.result_total or 0 for p in ended),
            "results_matching": sum(1 for p in ended if p.result_total == len(p.acknowledged)),
        },
    }

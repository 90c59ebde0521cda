"""A room's polls: the teacher asks, each student votes once (and may change it until
the poll ends), the room hears the result. Every step is stored with the session."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import Conflict, InvalidRequest, NotFound
from ..ids import UserId, is_object_id, new_id
from ..models import ActivityEvent, ActivityKind, AttendanceSession, User, new_activity
from ..store import Store
from ..store.outage import outage_error
from ..timeutil import iso_ms, utcnow

log = logging.getLogger(__name__)

QUESTION_MAX_CHARS = 500
OPTION_MAX_CHARS = 200
MIN_OPTIONS, MAX_OPTIONS = 2, 10
BAD_QUESTION = (
    f"Invalid payload: question must be 1 to {QUESTION_MAX_CHARS} characters, not only whitespace"
)
BAD_OPTIONS = (
    f"Invalid payload: options must be {MIN_OPTIONS} to {MAX_OPTIONS} different texts "
    f"of 1 to {OPTION_MAX_CHARS} characters"
)
BAD_ANONYMOUS = "Invalid payload: anonymous must be a boolean"
BAD_POLL_ID = "Invalid payload: pollId must be a poll id"
BAD_OPTION = "Invalid payload: option must be the number of one of the poll's options"
POLL_OPEN = "A poll is already open; end it first"
NO_SUCH_POLL = "No such poll in this session"
POLL_ENDED = "This poll has ended"
POLL_KINDS = ("poll_started", "poll_vote", "poll_ended")


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        return None
    return value


def poll_question(data: dict[str, Any]) -> tuple[str, list[str], bool]:
    """``POLL_START``'s question, options and anonymity, or `InvalidRequest`."""
    question = _text(data.get("question"), QUESTION_MAX_CHARS)
    if question is None:
        raise InvalidRequest(BAD_QUESTION)
    options = data.get("options")
    if not isinstance(options, list) or not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise InvalidRequest(BAD_OPTIONS)
    texts = [_text(option, OPTION_MAX_CHARS) for option in options]
    if any(text is None for text in texts) or len({t.strip() for t in options}) < len(options):
        raise InvalidRequest(BAD_OPTIONS)
    anonymous = data.get("anonymous", False)
    if not isinstance(anonymous, bool):
        raise InvalidRequest(BAD_ANONYMOUS)
    return question, [t for t in texts if t is not None], anonymous


def poll_id_of(data: dict[str, Any]) -> str:
    poll_id = data.get("pollId")
    if not is_object_id(poll_id):
        raise InvalidRequest(BAD_POLL_ID)
    assert isinstance(poll_id, str)
    return poll_id


def option_of(data: dict[str, Any]) -> int:
    option = data.get("option")
    if not isinstance(option, int) or isinstance(option, bool):
        raise InvalidRequest(BAD_OPTION)
    return option


@dataclass
class Poll:
    """One poll of the session: its question, the votes so far, whether it ended."""

    id: str
    question: str
    options: list[str]
    anonymous: bool
    started_at: datetime
    votes: dict[UserId, int] = field(default_factory=dict)
    ended_at: datetime | None = None
    final: list[int] | None = None
    """The counts stored when it ended (an anonymous poll's choices are not stored)."""

    @property
    def open(self) -> bool:
        return self.ended_at is None

    def counts(self) -> list[int]:
        if self.final is not None:
            return list(self.final)
        counts = [0] * len(self.options)
        for option in self.votes.values():
            counts[option] += 1
        return counts

    def public(self) -> dict[str, Any]:
        """``POLL_STARTED``: what everyone sees of it (no counts while it is open)."""
        return {
            "pollId": self.id,
            "question": self.question,
            "options": list(self.options),
            "anonymous": self.anonymous,
            "at": iso_ms(self.started_at),
        }

    def tally(self) -> dict[str, Any]:
        """``POLL_COUNTS`` (the teacher, while open) and the counts of ``POLL_RESULT``."""
        counts = self.counts()
        return {"pollId": self.id, "counts": counts, "voters": sum(counts)}

    def result(self) -> dict[str, Any]:
        """``POLL_RESULT``: the poll and its final counts, to everyone."""
        return {**self.public(), **self.tally(), "endedAt": iso_ms(self.ended_at or utcnow())}


class RoomPolls:
    """The polls of one session's room; one is open at a time."""

    def __init__(self, store: Store, session: AttendanceSession) -> None:
        self._store = store
        self._session = session
        self._polls: dict[str, Poll] = {}
        self._restored = False

    @property
    def current(self) -> Poll | None:
        """The open poll, if any."""
        return next((p for p in self._polls.values() if p.open), None)

    async def restore(self) -> None:
        """Read the session's polls (a room reopened after a restart); once. An anonymous
        poll's choices are not stored, only who voted: if it was open, it counts afresh."""
        if self._restored:
            return
        try:
            events = await self._store.list_activity(self._session.id, POLL_KINDS)
        except Exception as error:
            if outage_error(error) is None:
                raise
            log.warning("polls of session %s not read: %s", self._session.id, error)
            return
        for event in events:
            self._replay(event)
        self._restored = True

    def _replay(self, event: ActivityEvent) -> None:
        data = event.data
        if event.kind == "poll_started":
            self._polls[data["pollId"]] = Poll(
                data["pollId"], data["question"], list(data["options"]), data["anonymous"], event.at
            )
            return
        poll = self._polls.get(data.get("pollId", ""))
        if poll is None:
            return
        if event.kind == "poll_vote" and isinstance(data.get("option"), int):
            poll.votes[event.user_id] = data["option"]
        elif event.kind == "poll_ended":
            poll.ended_at = event.at
            poll.final = list(data.get("counts") or poll.counts())

    def get(self, poll_id: str) -> Poll | None:
        """A poll of the session, open or ended."""
        return self._polls.get(poll_id)

    def my_vote(self, poll: Poll, user: UserId) -> int | None:
        return poll.votes.get(user)

    async def start(self, by: User, question: str, options: list[str], anonymous: bool) -> Poll:
        if self.current is not None:
            raise Conflict(POLL_OPEN)
        poll = Poll(new_id(), question, options, anonymous, utcnow())
        await self._record(by.id, "poll_started", poll.started_at, poll.public() | {"by": by.id})
        self._polls[poll.id] = poll
        return poll

    async def vote(self, user: User, poll_id: str, option: int) -> Poll:
        poll = self._open(poll_id)
        if not 0 <= option < len(poll.options):
            raise InvalidRequest(BAD_OPTION)
        data: dict[str, Any] = {"pollId": poll.id}
        if not poll.anonymous:
            data["option"] = option
        await self._record(user.id, "poll_vote", utcnow(), data)
        if not poll.open:  # it ended while the vote was being stored: not counted
            raise Conflict(POLL_ENDED)
        poll.votes[user.id] = option
        return poll

    async def end(self, by: User, poll_id: str) -> Poll:
        poll = self._open(poll_id)
        poll.ended_at = at = utcnow()  # first: no vote counts after the counts stored
        try:
            await self._record(
                by.id, "poll_ended", at, {"pollId": poll.id, "counts": poll.counts()}
            )
        except BaseException:
            poll.ended_at = None
            raise
        poll.final = poll.counts()
        return poll

    def _open(self, poll_id: str) -> Poll:
        poll = self._polls.get(poll_id)
        if poll is None:
            raise NotFound(NO_SUCH_POLL)
        if not poll.open:
            raise Conflict(POLL_ENDED)
        return poll

    async def _record(
        self, user: UserId, kind: ActivityKind, at: datetime, data: dict[str, Any]
    ) -> None:
        await self._store.append_activity(new_activity(self._session, user, kind, data, at))

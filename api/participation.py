"""Participation in a session, per student: the attendance row with the evidence that
decided it, next to what they did in the room (chat, hands, polls, moderation) and an
activity score. Pure: built from the report rows and the session's activity record.

The activity score follows BigBlueButton's learning dashboard: five metrics, each worth up
to 2 points, scaled to the room's top student in that metric (who gets the 2 points; a
metric nobody has counts 0 for everyone), summed to 0-10 and rounded to one decimal.
BigBlueButton's five are talk time, chat messages, raised hands, reactions and poll
answers. This server has no reactions; it measures camera time from the media itself, so
camera time takes the place of reactions: like a reaction it shows attention without
speaking, and unlike one it cannot be sent in a burst. Teachers are not scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ids import UserId
from .models import MEDIA_MARK_KINDS, ActivityEvent
from .timeutil import iso_ms

SCORE_METRICS = ("talkSeconds", "cameraSeconds", "chatMessages", "handsRaised", "pollVotes")
POINTS_PER_METRIC = 2.0
SCORE_FORMULA = (
    "sum over talkSeconds, cameraSeconds, chatMessages, handsRaised, pollVotes of "
    "2 * value / (the highest value of any student in the session), 0 where that is 0"
)


@dataclass
class ActivityTally:
    """What one member did in the room besides their media."""

    chat_messages: int = 0
    chat_deleted: int = 0
    hands_raised: int = 0
    polls_voted: set[str] = field(default_factory=set)
    moderation: list[dict[str, Any]] = field(default_factory=list)
    chat_at: list[str] = field(default_factory=list)
    hands_at: list[str] = field(default_factory=list)
    camera_spans: list[list[str | None]] = field(default_factory=list)
    talk_spans: list[list[str | None]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "chatMessages": self.chat_messages,
            "chatDeleted": self.chat_deleted,
            "handsRaised": self.hands_raised,
            "pollVotes": len(self.polls_voted),
            "moderation": list(self.moderation),
            "chatAt": list(self.chat_at),
            "handsAt": list(self.hands_at),
            "cameraSpans": [list(span) for span in self.camera_spans],
            "talkSpans": [list(span) for span in self.talk_spans],
        }

    def mark(self, kind: str, on: bool, at: str) -> None:
        """A camera or talking mark: a span opens at `on`, the open one closes at off (a
        span still open has ``None`` as its end: live, or the record was cut short)."""
        spans = self.camera_spans if kind == "camera" else self.talk_spans
        is_open = bool(spans) and spans[-1][1] is None
        if on and not is_open:
            spans.append([at, None])
        elif not on and is_open:
            spans[-1][1] = at


def tally_activity(events: Iterable[ActivityEvent]) -> dict[UserId, ActivityTally]:
    """Per member, from a session's activity record (in append order)."""
    tallies: dict[UserId, ActivityTally] = {}
    authors: dict[str, UserId] = {}

    def of(user: UserId) -> ActivityTally:
        return tallies.setdefault(user, ActivityTally())

    for event in events:
        at = iso_ms(event.at)
        if event.kind == "chat":
            authors[event.id] = event.user_id
            of(event.user_id).chat_messages += 1
            of(event.user_id).chat_at.append(at)
        elif event.kind == "chat_deleted":
            author = authors.get(str(event.data.get("messageId")))
            if author is not None:
                of(author).chat_deleted += 1
        elif event.kind == "hand" and event.data.get("raised") is True:
            of(event.user_id).hands_raised += 1
            of(event.user_id).hands_at.append(at)
        elif event.kind == "poll_vote":
            of(event.user_id).polls_voted.add(str(event.data.get("pollId")))
        elif event.kind in MEDIA_MARK_KINDS:
            of(event.user_id).mark(event.kind, event.data.get("on") is True, at)
        elif event.kind == "moderation":
            of(event.user_id).moderation.append(
                {"action": event.data.get("action"), "by": event.data.get("by"), "at": at}
            )
    return tallies


def activity_scores(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each row's activity score (rows: the ``SCORE_METRICS`` of each student)."""
    tops = {
        metric: max((float(row[metric]) for row in rows), default=0.0) for metric in SCORE_METRICS
    }
    scores = []
    for row in rows:
        score = sum(
            POINTS_PER_METRIC * float(row[metric]) / tops[metric]
            for metric in SCORE_METRICS
            if tops[metric] > 0
        )
        scores.append(round(score, 1))
    return scores


def polls_of(events: Iterable[ActivityEvent]) -> list[dict[str, Any]]:
    """The session's polls with their final counts (``None`` while one is open)."""
    polls: dict[str, dict[str, Any]] = {}
    for event in events:
        data = event.data
        if event.kind == "poll_started":
            polls[str(data.get("pollId"))] = {
                "pollId": data.get("pollId"),
                "question": data.get("question"),
                "options": data.get("options"),
                "anonymous": data.get("anonymous"),
                "startedAt": iso_ms(event.at),
                "endedAt": None,
                "counts": None,
            }
        elif event.kind == "poll_ended" and str(data.get("pollId")) in polls:
            polls[str(data["pollId"])] |= {
                "endedAt": iso_ms(event.at),
                "counts": data.get("counts"),
            }
    return list(polls.values())


def participation_rows(
    attendance: Sequence[Mapping[str, Any]],
    tallies: Mapping[UserId, ActivityTally],
    session_seconds: float,
) -> list[dict[str, Any]]:
    """The attendance rows (``GET .../sessions/:id`` students) with each student's
    activity, presence share of the session and activity score."""
    rows = []
    for row in attendance:
        tally = tallies.get(UserId(str(row["studentId"]))) or ActivityTally()
        presence = float(row.get("presenceSeconds") or 0.0)
        rows.append(
            {
                **row,
                "presenceRatio": round(presence / session_seconds, 4)
                if session_seconds > 0
                else 0.0,
                "cameraSeconds": float(row.get("cameraSeconds") or 0.0),
                "micSeconds": float(row.get("micSeconds") or 0.0),
                "talkSeconds": float(row.get("talkSeconds") or 0.0),
                **tally.public(),
            }
        )
    for row, score in zip(rows, activity_scores(rows), strict=True):
        row["activityScore"] = score
    return rows

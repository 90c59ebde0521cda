"""Attendance reports: a class's sessions, one session's detail and CSV, a student's
history, and the class's attendance settings."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from .. import access, validation
from ..errors import INVALID_SCHEMA, InvalidRequest, NotFound
from ..ids import is_object_id
from ..models import AttendancePolicy, AttendanceSession, ClassRecord, User
from ..participation import (
    SCORE_FORMULA,
    participation_rows,
    polls_of,
    tally_activity,
)
from ..timeutil import iso_ms, utcnow
from .common import current_user, ok, services

SESSION_NOT_FOUND = "Session not found"
CSV_COLUMNS = (
    "studentId",
    "name",
    "email",
    "status",
    "source",
    "firstJoin",
    "lastLeave",
    "presenceSeconds",
    "cameraSeconds",
    "micSeconds",
    "talkSeconds",
    "overrideBy",
    "overrideAt",
)


def _session_public(session: AttendanceSession) -> dict[str, Any]:
    summary = session.summary
    return {
        "sessionId": session.id,
        "roomId": session.room_id,
        "startedAt": iso_ms(session.started_at),
        "endedAt": iso_ms(session.ended_at) if session.ended_at else None,
        "isActive": session.is_active,
        "summary": ({**summary.as_dict(), "late": summary.late} if summary else None),
    }


async def _owned_class(request: web.Request) -> tuple[User, ClassRecord]:
    user = await current_user(request)
    access.require_teacher(user)
    cls = await services(request).classes.get_for_owner(user, request.match_info["id"])
    return user, cls


async def _owned_class_report(request: web.Request) -> tuple[User, ClassRecord]:
    """`_owned_class` for a route that builds a session's whole report: rate-limited per
    account (`api.rate_limits.HeavyRoutes`)."""
    user, cls = await _owned_class(request)
    services(request).heavy_routes.check(user.id)
    return user, cls


async def _session_of(request: web.Request, cls: ClassRecord) -> AttendanceSession:
    session_id = request.match_info["session_id"]
    store = services(request).store
    session = await store.get_session(session_id) if is_object_id(session_id) else None
    if session is None or session.class_id != cls.id:
        raise NotFound(SESSION_NOT_FOUND)
    return session


async def _session_rows(
    request: web.Request, cls: ClassRecord, session: AttendanceSession
) -> list[dict[str, Any]]:
    """Final rows from the stored marks of a finished session; live rows otherwise."""
    app = services(request)
    if session.is_active:
        report = await app.attendance.report(session, cls)
        found = [(row.student_id, row.status, row.source, row.detail()) for row in report]
    else:
        found = [
            (m.student_id, m.status, m.source, m.extra)
            for m in await app.store.list_marks(session.id)
        ]
    rows = []
    for student_id, status, source, detail in found:
        user = await app.store.get_user(student_id)
        rows.append(
            {
                "studentId": student_id,
                "name": user.name if user else None,
                "email": user.email if user else None,
                "status": status,
                "source": source,
                **detail,
            }
        )
    return rows


PARTICIPATION_CSV_COLUMNS = (
    *CSV_COLUMNS[:7],
    "presenceRatio",
    *CSV_COLUMNS[7:11],
    "chatMessages",
    "handsRaised",
    "pollVotes",
    "moderation",
    "activityScore",
    *CSV_COLUMNS[11:],
)


async def _participation(
    request: web.Request, cls: ClassRecord, session: AttendanceSession
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the students' participation rows, the session's polls)."""
    attendance = await _session_rows(request, cls, session)
    events = await services(request).store.list_activity(session.id)
    until = session.ended_at or utcnow()
    seconds = (until - session.started_at).total_seconds()
    return participation_rows(attendance, tally_activity(events), seconds), polls_of(events)


async def participation(request: web.Request) -> web.Response:
    _, cls = await _owned_class(request)
    session = await _session_of(request, cls)
    rows, polls = await _participation(request, cls, session)
    return ok(
        {
            **_session_public(session),
            "classId": cls.id,
            "policy": cls.policy.public(),
            "scoreFormula": SCORE_FORMULA,
            "polls": polls,
            "students": rows,
        }
    )


async def participation_csv(request: web.Request) -> web.Response:
    _, cls = await _owned_class_report(request)
    session = await _session_of(request, cls)
    rows, _ = await _participation(request, cls, session)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PARTICIPATION_CSV_COLUMNS)
    for row in rows:
        override = row.get("override") or {}
        actions = ";".join(str(m["action"]) for m in row["moderation"])
        values = {
            **row,
            "overrideBy": override.get("by"),
            "overrideAt": override.get("at"),
            "moderation": actions,
        }
        writer.writerow(
            ["" if values.get(c) is None else values.get(c) for c in PARTICIPATION_CSV_COLUMNS]
        )
    filename = f"participation-{cls.id}-{session.id}.csv"
    return web.Response(
        text=buffer.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def list_sessions(request: web.Request) -> web.Response:
    _, cls = await _owned_class(request)
    sessions = await services(request).store.list_sessions(cls.id)
    return ok([_session_public(session) for session in sessions])


async def session_detail(request: web.Request) -> web.Response:
    _, cls = await _owned_class(request)
    session = await _session_of(request, cls)
    rows = await _session_rows(request, cls, session)
    return ok({**_session_public(session), "classId": cls.id, "students": rows})


async def session_csv(request: web.Request) -> web.Response:
    _, cls = await _owned_class_report(request)
    session = await _session_of(request, cls)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in await _session_rows(request, cls, session):
        override = row.get("override") or {}
        values = {**row, "overrideBy": override.get("by"), "overrideAt": override.get("at")}
        writer.writerow(["" if values.get(c) is None else values.get(c) for c in CSV_COLUMNS])
    filename = f"attendance-{cls.id}-{session.id}.csv"
    return web.Response(
        text=buffer.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def my_history(request: web.Request) -> web.Response:
    user = await current_user(request)
    access.require_student(user)
    app = services(request)
    cls = await app.classes.get(request.match_info["id"])
    access.require_enrolled(user, cls)
    history = []
    for mark in await app.store.list_marks_for_student(cls.id, user.id):
        session = await app.store.get_session(mark.session_id)
        if session is None or session.is_active:
            continue
        rows, _ = await _participation(request, cls, session)
        mine = next((row for row in rows if row["studentId"] == user.id), {})
        history.append(
            {
                "sessionId": session.id,
                "startedAt": iso_ms(session.started_at),
                "endedAt": iso_ms(session.ended_at) if session.ended_at else None,
                "status": mark.status,
                "source": mark.source,
                **mark.extra,
                **{key: mine.get(key) for key in MY_PARTICIPATION},
            }
        )
    return ok(history)


MY_PARTICIPATION = ("presenceRatio", "chatMessages", "handsRaised", "pollVotes", "activityScore")
"""What ``my-history`` adds of a session's participation (the student's own only)."""


async def update_settings(request: web.Request) -> web.Response:
    _, cls = await _owned_class(request)
    body = await validation.json_object(request)
    ratio = body.get("presentRatio", cls.policy.present_ratio)
    late = body.get("lateAfterSeconds", cls.policy.late_after_seconds)
    if isinstance(late, float) and late.is_integer():  # 18.0 is the integer 18 in JSON
        late = int(late)
    recordings = body.get("allowStudentRecordings", cls.allow_student_recordings)
    screen_share = body.get("allowStudentScreenShare", cls.allow_student_screen_share)
    unmute = body.get("allowStudentUnmute", cls.allow_student_unmute)
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, (int, float))
        or not 0 < ratio <= 1
        or isinstance(late, bool)
        or not isinstance(late, int)
        or not 0 <= late <= 86400
        or not isinstance(recordings, bool)
        or not isinstance(screen_share, bool)
        or not isinstance(unmute, bool)
    ):
        raise InvalidRequest(INVALID_SCHEMA)
    # Only what the body names is written: two teachers' PUTs of different settings at once
    # must not undo each other with the values they read.
    policy_named = "presentRatio" in body or "lateAfterSeconds" in body
    updated = await services(request).store.update_class_settings(
        cls.id,
        policy=AttendancePolicy(present_ratio=float(ratio), late_after_seconds=late)
        if policy_named
        else None,
        allow_student_recordings=recordings if "allowStudentRecordings" in body else None,
        allow_student_screen_share=screen_share if "allowStudentScreenShare" in body else None,
        allow_student_unmute=unmute if "allowStudentUnmute" in body else None,
    )
    return ok(updated.detail())


def setup(app: web.Application) -> None:
    app.router.add_get("/class/{id}/sessions", list_sessions)
    app.router.add_get("/class/{id}/sessions/{session_id}", session_detail)
    app.router.add_get("/class/{id}/sessions/{session_id}/attendance.csv", session_csv)
    app.router.add_get("/class/{id}/sessions/{session_id}/participation", participation)
    app.router.add_get("/class/{id}/sessions/{session_id}/participation.csv", participation_csv)
    app.router.add_get("/class/{id}/my-history", my_history)
    app.router.add_put("/class/{id}/settings", update_settings)

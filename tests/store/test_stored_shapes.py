"""What the backends write, exactly: the shared entity mapping (``api.store.records``) keeps
every row and document in the shape databases already in use hold, and reads documents
written before later fields existed."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId

from api.ids import new_id
from api.models import (
    AttendanceMark,
    AttendancePolicy,
    PresenceCounters,
    PresenceEvent,
    Recording,
    SessionSummary,
)
from api.store import MongoStore, SqliteStore, Store
from scripts.support.nx27017 import Nx27017Server
from tests.store.conftest import mongo_client

T0 = datetime(2026, 11, 26, 9, 0, 0, 125000, tzinfo=UTC)


async def _populate(store: Store) -> dict[str, Any]:
    """One of every record, through the store; returns the ids and times it chose."""
    teacher = await store.create_user(
        name="T", email="T@School.test", role="teacher", password_hash="h"
    )
    student = await store.create_user(name="S", email="s@school.test", role="student")
    cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
    await store.add_student(cls.id, student.id)
    await store.update_class_settings(
        cls.id,
        policy=AttendancePolicy(present_ratio=0.5, late_after_seconds=60),
        allow_student_screen_share=True,
    )
    session = await store.start_session(class_id=cls.id, teacher_id=teacher.id, started_at=T0)
    await store.put_mark(
        AttendanceMark(
            session_id=session.id,
            class_id=cls.id,
            student_id=student.id,
            status="present",
            source="teacher",
            marked_at=T0 + timedelta(seconds=1),
            marked_by=teacher.id,
            extra={"note": "on time"},
        )
    )
    await store.append_presence_event(
        PresenceEvent(session.id, cls.id, student.id, "connected", T0 + timedelta(seconds=2))
    )
    await store.put_presence_counters(
        PresenceCounters(session.id, cls.id, student.id, 1000, 2000, 300, T0 + timedelta(seconds=3))
    )
    summary = SessionSummary(present=1, absent=0, total=1, late=0)
    await store.end_session(session.id, ended_at=T0 + timedelta(hours=1), summary=summary)
    recording = Recording(
        id=new_id(), class_id=cls.id, session_id=session.id, started_by=teacher.id, started_at=T0
    )
    await store.put_recording(recording)
    return {
        "teacher": teacher,
        "student": student,
        "class": cls,
        "session": session,
        "recording": recording,
    }


async def test_mongo_documents_keep_their_shape(nx27017_server: Nx27017Server) -> None:
    db_name = f"shapes_{new_id()}"
    store = MongoStore(nx27017_server.uri, db_name)
    await store.open()
    try:
        made = await _populate(store)
    finally:
        await store.close()
    teacher, student, cls, session = (
        made["teacher"],
        made["student"],
        made["class"],
        made["session"],
    )
    client = mongo_client(nx27017_server.uri)
    try:
        db = client[db_name]
        users = await db.users.find({}).sort("createdAt").to_list()
        classes = await db.classes.find({}).to_list()
        sessions = await db.sessions.find({}).to_list()
        marks = await db.marks.find({}, {"_id": False}).to_list()
        events = await db.presence_events.find({}, {"_id": False}).to_list()
        counters = await db.presence_counters.find({}, {"_id": False}).to_list()
        recordings = await db.recordings.find({}).to_list()
    finally:
        await client.close()

    assert users == [
        {
            "_id": ObjectId(teacher.id),
            "name": "T",
            "email": "t@school.test",
            "role": "teacher",
            "createdAt": teacher.created_at,
            "passwordHash": "h",
        },
        {
            "_id": ObjectId(student.id),
            "name": "S",
            "email": "s@school.test",
            "role": "student",
            "createdAt": student.created_at,
        },
    ]
    assert classes == [
        {
            "_id": ObjectId(cls.id),
            "className": "Physics",
            "teacherId": teacher.id,
            "studentIds": [student.id],
            "createdAt": cls.created_at,
            "policy": {"presentRatio": 0.5, "lateAfterSeconds": 60},
            "allowStudentRecordings": False,
            "allowStudentScreenShare": True,
            "allowStudentUnmute": True,
            "rev": 2,
        }
    ]
    assert sessions == [
        {
            "_id": ObjectId(session.id),
            "classId": cls.id,
            "roomId": session.room_id,
            "teacherId": teacher.id,
            "startedAt": T0,
            "endedAt": T0 + timedelta(hours=1),
            "summary": {"present": 1, "absent": 0, "total": 1, "late": 0},
        }
    ]
    assert marks == [
        {
            "sessionId": session.id,
            "studentId": student.id,
            "classId": cls.id,
            "status": "present",
            "source": "teacher",
            "markedAt": T0 + timedelta(seconds=1),
            "markedBy": teacher.id,
            "extra": {"note": "on time"},
        }
    ]
    assert events == [
        {
            "sessionId": session.id,
            "classId": cls.id,
            "userId": student.id,
            "kind": "connected",
            "at": T0 + timedelta(seconds=2),
            "reason": None,
            "seq": 1,
        }
    ]
    assert counters == [
        {
            "sessionId": session.id,
            "userId": student.id,
            "classId": cls.id,
            "cameraMs": 1000,
            "micMs": 2000,
            "talkMs": 300,
            "lastSeenAt": T0 + timedelta(seconds=3),
        }
    ]
    [recording] = recordings
    assert recording["_id"] == ObjectId(made["recording"].id)
    assert recording["startedAt"] == T0 and recording["stoppedAt"] is None
    assert recording["job"]["status"] == "pending"


async def test_mongo_documents_from_before_the_class_settings_read_with_the_defaults(
    nx27017_server: Nx27017Server,
) -> None:
    db_name = f"legacy_{new_id()}"
    teacher_id, class_id, session_id = new_id(), new_id(), new_id()
    client = mongo_client(nx27017_server.uri)
    try:
        db = client[db_name]
        await db.users.insert_one(
            {"_id": ObjectId(teacher_id), "name": "T", "email": "t@x.test", "role": "teacher"}
            | {"createdAt": T0}
        )
        await db.classes.insert_one(
            {"_id": ObjectId(class_id), "className": "Old", "teacherId": teacher_id}
            | {"studentIds": [], "createdAt": T0}
        )
        summary = {"present": 1, "absent": 2, "total": 3}  # written before "late" existed
        await db.sessions.insert_one(
            {"_id": ObjectId(session_id), "classId": class_id, "roomId": new_id()}
            | {"teacherId": teacher_id, "startedAt": T0, "endedAt": T0, "summary": summary}
        )
    finally:
        await client.close()
    store = MongoStore(nx27017_server.uri, db_name)
    await store.open()
    try:
        user = await store.get_user(teacher_id)
        cls = await store.get_class(class_id)
        session = await store.get_session(session_id)
    finally:
        await store.close()
    assert user is not None and user.password_hash is None and user.external_id is None
    assert cls is not None and cls.policy == AttendancePolicy()
    assert cls.allow_student_recordings is False and cls.allow_student_screen_share is False
    assert cls.allow_student_unmute is True  # older classes: students may unmute
    assert session is not None and session.summary == SessionSummary(1, 2, 3, late=0)


async def test_sqlite_rows_keep_their_shape(tmp_path: Path) -> None:
    path = tmp_path / "shapes.sqlite3"
    store = SqliteStore(path)
    await store.open()
    try:
        made = await _populate(store)
    finally:
        await store.close()
    teacher, student, cls, session = (
        made["teacher"],
        made["student"],
        made["class"],
        made["session"],
    )
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:

        def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(row) for row in conn.execute(sql).fetchall()]

        assert rows("SELECT * FROM users ORDER BY created_at, id")[0] == {
            "id": teacher.id,
            "name": "T",
            "email": "t@school.test",
            "role": "teacher",
            "password_hash": "h",
            "external_id": None,
            "created_at": _iso(teacher.created_at),
        }
        assert rows("SELECT * FROM classes") == [
            {
                "id": cls.id,
                "class_name": "Physics",
                "teacher_id": teacher.id,
                "created_at": _iso(cls.created_at),
                "present_ratio": 0.5,
                "late_after_seconds": 60,
                "allow_student_recordings": 0,
                "allow_student_screen_share": 1,
                "allow_student_unmute": 1,
            }
        ]
        assert rows("SELECT * FROM sessions") == [
            {
                "id": session.id,
                "class_id": cls.id,
                "room_id": session.room_id,
                "teacher_id": teacher.id,
                "started_at": "2026-11-26T09:00:00.125Z",
                "ended_at": "2026-11-26T10:00:00.125Z",
                "summary_present": 1,
                "summary_absent": 0,
                "summary_total": 1,
                "summary_late": 0,
                "node_id": None,
            }
        ]
        assert rows("SELECT * FROM marks") == [
            {
                "session_id": session.id,
                "student_id": student.id,
                "class_id": cls.id,
                "status": "present",
                "source": "teacher",
                "marked_at": "2026-11-26T09:00:01.125Z",
                "marked_by": teacher.id,
                "extra": json.dumps({"note": "on time"}),
            }
        ]
        assert rows("SELECT * FROM presence_events") == [
            {
                "seq": 1,
                "session_id": session.id,
                "class_id": cls.id,
                "user_id": student.id,
                "kind": "connected",
                "at": "2026-11-26T09:00:02.125Z",
                "reason": None,
            }
        ]
        assert rows("SELECT * FROM presence_counters") == [
            {
                "session_id": session.id,
                "user_id": student.id,
                "class_id": cls.id,
                "camera_ms": 1000,
                "mic_ms": 2000,
                "talk_ms": 300,
                "last_seen_at": "2026-11-26T09:00:03.125Z",
            }
        ]
    finally:
        conn.close()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

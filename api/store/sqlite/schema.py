"""The SQLite schema, its migrations, and how the store's one connection is set up.

``PRAGMA user_version`` holds the schema version: migration *n* (1-based) moves a database
from version *n - 1* to *n*. Add a migration by appending a tuple of statements; never edit
one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_V1 = (
    """CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT,
        external_id TEXT,
        created_at TEXT NOT NULL
    )""",
    # Emails are stored lowercased already; the expression keeps the rule true even for
    # a row written by hand.
    "CREATE UNIQUE INDEX users_email_unique ON users (lower(email))",
    "CREATE INDEX users_by_role ON users (role, created_at)",
    "CREATE INDEX users_by_external_id ON users (external_id) WHERE external_id IS NOT NULL",
    """CREATE TABLE classes (
        id TEXT PRIMARY KEY,
        class_name TEXT NOT NULL,
        teacher_id TEXT NOT NULL REFERENCES users (id),
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX classes_by_teacher ON classes (teacher_id, created_at)",
    # position, not rowid, keeps enrolment order: VACUUM may renumber rowids.
    """CREATE TABLE enrolments (
        class_id TEXT NOT NULL REFERENCES classes (id),
        student_id TEXT NOT NULL REFERENCES users (id),
        position INTEGER NOT NULL,
        enrolled_at TEXT NOT NULL,
        PRIMARY KEY (class_id, student_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX enrolments_by_student ON enrolments (student_id)",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        class_id TEXT NOT NULL REFERENCES classes (id),
        room_id TEXT NOT NULL,
        teacher_id TEXT NOT NULL REFERENCES users (id),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        summary_present INTEGER,
        summary_absent INTEGER,
        summary_total INTEGER,
        summary_late INTEGER
    )""",
    "CREATE UNIQUE INDEX sessions_one_active_per_class ON sessions (class_id) "
    "WHERE ended_at IS NULL",
    "CREATE INDEX sessions_by_class ON sessions (class_id, started_at)",
    # No foreign key on student_id: who may be marked is the API's rule, not the store's.
    """CREATE TABLE marks (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        student_id TEXT NOT NULL,
        class_id TEXT NOT NULL,
        status TEXT NOT NULL,
        source TEXT NOT NULL,
        marked_at TEXT NOT NULL,
        marked_by TEXT,
        extra TEXT NOT NULL,
        PRIMARY KEY (session_id, student_id)
    ) WITHOUT ROWID""",
)

# Per-class attendance policy and recording permission, presence, and marks by student.
# The column defaults are AttendancePolicy's defaults when this shipped, so classes created
# before v2 keep working with them (tests hold the two equal).
_V2 = (
    "ALTER TABLE classes ADD COLUMN present_ratio REAL NOT NULL DEFAULT 0.75",
    "ALTER TABLE classes ADD COLUMN late_after_seconds INTEGER NOT NULL DEFAULT 600",
    "ALTER TABLE classes ADD COLUMN allow_student_recordings INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX marks_by_class_student ON marks (class_id, student_id)",
    # Append-only; seq is the append order (AUTOINCREMENT: never reused, and an INTEGER
    # PRIMARY KEY survives VACUUM). No foreign keys: these are hot-path writes for sessions
    # the caller runs, and MongoStore cannot check them without a read first.
    """CREATE TABLE presence_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        class_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT
    )""",
    "CREATE INDEX presence_events_by_session ON presence_events (session_id, seq)",
    """CREATE TABLE presence_counters (
        session_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        class_id TEXT NOT NULL,
        camera_ms INTEGER NOT NULL,
        mic_ms INTEGER NOT NULL,
        talk_ms INTEGER NOT NULL,
        last_seen_at TEXT NOT NULL,
        PRIMARY KEY (session_id, user_id)
    ) WITHOUT ROWID""",
)

# Recordings: one JSON document per recording (files and compose job change together).
_V3 = (
    """CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        class_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX recordings_by_class ON recordings (class_id, started_at)",
)

# Whether students may share a screen in the class's room.
_V4 = ("ALTER TABLE classes ADD COLUMN allow_student_screen_share INTEGER NOT NULL DEFAULT 0",)

# Room activity (chat, hands): append-only like presence_events, ordered by seq; data is
# the event's own JSON object.
_V5 = (
    """CREATE TABLE activity (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        class_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        at TEXT NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX activity_by_session ON activity (session_id, seq)",
)

# Whether a student the teacher muted may unmute themselves (on by default).
_V6 = ("ALTER TABLE classes ADD COLUMN allow_student_unmute INTEGER NOT NULL DEFAULT 1",)

_V7 = ("ALTER TABLE sessions ADD COLUMN node_id TEXT",)
"""The cluster node holding the session's room (always NULL on SQLite, which a cluster
does not run on; kept so both stores hold the same session)."""

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer build than this one."""


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction that takes the write lock up front, so reads inside it see
    the state the writes apply to; rolled back on any error, a failed ``COMMIT`` included.

    SQLite may have rolled back already (``database or disk is full``); a ``COMMIT`` that
    fails (locked, full) leaves the transaction open, and every later ``BEGIN`` would fail.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds a statement waits for a lock another connection holds
(``SQLITE_BUSY_TIMEOUT_SECONDS``)."""


def connect(path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode (each write commits, so it survives kill -9),
    with WAL, ``synchronous=FULL`` and foreign keys on, migrated to the current schema.

    FULL: each commit syncs the WAL before it returns, so an acknowledged write survives a
    power loss too (NORMAL syncs only at checkpoints: a power loss could undo the last
    commits). Its cost is measured by ``scripts/bench_store.py`` (docs/benchmarks.md).
    A lock held elsewhere for longer than `busy_timeout` fails the statement with
    ``database is locked`` (``api.store.outage``: 503)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply every migration the database has not seen yet, all in one transaction."""
    with immediate(conn):
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{path} has schema version {current}; this build knows up to {SCHEMA_VERSION}"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

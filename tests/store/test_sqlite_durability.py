"""SqliteStore keeps every acknowledged write through kill -9, and its file settings."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from api.store import SqliteStore
from api.store.sqlite_schema import SCHEMA_VERSION, SchemaTooNew

REPO = Path(__file__).resolve().parents[2]
ACKNOWLEDGED_BEFORE_KILL = 300

# Writes users forever; a line is printed only after create_user has returned (committed).
WRITER = """
import asyncio, sys
from pathlib import Path
from api.store import SqliteStore

async def main() -> None:
    store = SqliteStore(Path(sys.argv[1]))
    await store.open()
    number = 0
    while True:
        user = await store.create_user(
            name=f"user {number}", email=f"user{number}@school.test", role="student"
        )
        print(user.id, user.email, flush=True)
        number += 1

asyncio.run(main())
"""


def write_until_killed(path: Path) -> list[tuple[str, str]]:
    """Run the writer, SIGKILL it mid-stream, return every (id, email) it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    watchdog = threading.Timer(30.0, process.kill)
    watchdog.start()
    try:
        lines: list[bytes] = []
        while len(lines) < ACKNOWLEDGED_BEFORE_KILL:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"writer stopped early: {process.stderr.read()!r}")
            lines.append(line)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        # Lines already in the pipe were acknowledged before the kill, too.
        lines.extend(process.stdout.read().splitlines(keepends=True))
    finally:
        watchdog.cancel()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    acknowledged = []
    for line in lines:
        user_id, email = line.decode().split()
        acknowledged.append((user_id, email))
    return acknowledged


async def test_every_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    acknowledged = await asyncio.to_thread(write_until_killed, path)
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

    store = SqliteStore(path)
    await store.open()
    try:
        for user_id, email in acknowledged:
            user = await store.get_user(user_id)
            assert user is not None and user.email == email
        assert len(await store.list_users("student")) >= len(acknowledged)
    finally:
        await store.close()


async def test_the_file_is_in_wal_mode_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


async def test_a_database_written_by_a_newer_build_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "classroom.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteStore(path)
    with pytest.raises(SchemaTooNew, match="schema version"):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_user("0" * 24)

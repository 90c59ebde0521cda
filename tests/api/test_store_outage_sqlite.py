"""SQLite that cannot take a write: a lock another connection holds on the real database
file for longer than ``SQLITE_BUSY_TIMEOUT_SECONDS`` is ``503 Storage unavailable, try
again shortly``; a database that cannot grow (``PRAGMA max_page_count`` on the server's own
connection, as a full disk) is ``507 Storage full``. Neither stores part of the request,
and the next request after the condition ends succeeds, without a restart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from api.config import Settings
from api.store import SQLITE_FILE_NAME, Store
from api.store.outage import STORE_FULL, STORE_UNAVAILABLE
from api.store.sqlite import SqliteStore

from .conftest import RunningServer, ServerFactory


def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", sqlite_busy_timeout_seconds=0.2
    )


def sqlite_store(server: RunningServer) -> SqliteStore:
    """The server's SQLite store under the wrappers (timing, cache) around it."""
    store: Store = server.services.store
    while not isinstance(store, SqliteStore):
        store = store.inner  # type: ignore[attr-defined]
    return store


async def class_names(server: RunningServer, token: str) -> list[str]:
    classes = await server.api.call("GET", "/classes", token=token)
    return sorted(c["className"] for c in classes)


async def test_a_lock_held_elsewhere_is_503_after_the_busy_timeout_and_writes_resume(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = await start_server(sqlite_settings(tmp_path))
    teacher = await server.account("teacher")
    await server.api.create_class(teacher, "Before")
    other = sqlite3.connect(tmp_path / "data" / SQLITE_FILE_NAME, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock, as a backup or the shell holds it
        started = time.monotonic()
        status, answer = await server.api.request(
            "POST", "/class", token=teacher.token, body={"className": "Locked"}
        )
        waited = time.monotonic() - started
        assert (status, answer) == (503, {"success": False, "error": STORE_UNAVAILABLE})
        assert 0.2 <= waited < 2.0, waited
        assert await class_names(server, teacher.token) == ["Before"]  # reads go on (WAL)
    finally:
        other.rollback()
        other.close()
    await server.api.create_class(teacher, "After")
    assert await class_names(server, teacher.token) == ["After", "Before"]


async def test_a_database_that_cannot_grow_is_507_and_keeps_nothing_of_the_refused_write(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    server = await start_server(sqlite_settings(tmp_path))
    teacher = await server.account("teacher")
    store = sqlite_store(server)

    # PRAGMA max_page_count is the connection's own: set on the server's, it is a full disk.
    # It cannot go below the current size, so 1 means "not one page more".
    await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1").fetchone())
    acknowledged: list[str] = []
    refused: tuple[int, dict[str, object]] | None = None
    for number in range(2000):  # fills what free room the last pages have
        name = f"Class {number:04d} " + "x" * 180
        status, answer = await server.api.request(
            "POST", "/class", token=teacher.token, body={"className": name}
        )
        if status != 201:
            refused = (status, answer)
            break
        acknowledged.append(name)
    assert refused == (507, {"success": False, "error": STORE_FULL})
    assert await class_names(server, teacher.token) == acknowledged  # none half-written
    await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823").fetchone())
    await server.api.create_class(teacher, "After")
    assert await class_names(server, teacher.token) == sorted([*acknowledged, "After"])

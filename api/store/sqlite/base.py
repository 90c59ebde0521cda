"""The one connection on its own thread, and how fields become rows and rows fields."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ...timeutil import iso_ms, parse_iso
from ..base import Store
from ..records import Fields
from .schema import DEFAULT_BUSY_TIMEOUT, connect

T = TypeVar("T")
Row = sqlite3.Row

DATE_COLUMNS = frozenset(
    {"created_at", "started_at", "ended_at", "marked_at", "at", "last_seen_at"}
)
"""Columns holding a moment as ISO-8601 text with milliseconds (``api.timeutil.iso_ms``)."""
JSON_COLUMNS = frozenset({"extra", "data"})


class SqliteBase(Store):
    """Owns the connection and the single-thread executor every query runs on."""

    def __init__(self, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._conn is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            loop = asyncio.get_running_loop()
            self._conn = await loop.run_in_executor(
                executor, connect, self._path, self._busy_timeout
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            return
        self._conn = self._executor = None
        # Queued behind any work already submitted, so that work finishes first.
        await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=True)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            raise RuntimeError("SqliteStore is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, work, conn)

    async def _one(self, sql: str, params: Sequence[Any]) -> Fields | None:
        row: Row | None = await self._run(lambda conn: conn.execute(sql, params).fetchone())
        return decode(row) if row is not None else None

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Fields]:
        rows: list[Row] = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [decode(row) for row in rows]


def decode(row: Row) -> Fields:
    """A row's columns as fields (``api.store.records``): dates parsed, JSON loaded."""
    fields: Fields = {}
    for name in row.keys():  # noqa: SIM118 (a Row is not a mapping: no iteration by key)
        value = row[name]
        if value is not None and name in DATE_COLUMNS:
            value = parse_iso(value)
        elif value is not None and name in JSON_COLUMNS:
            value = json.loads(value)
        fields[name] = value
    return fields


def encode(fields: Mapping[str, Any]) -> Fields:
    """Fields as column values: dates as ISO text, dicts as JSON."""
    return {
        name: iso_ms(value)
        if isinstance(value, datetime)
        else json.dumps(value)
        if isinstance(value, dict)
        else value
        for name, value in fields.items()
    }


def insert(
    conn: sqlite3.Connection,
    table: str,
    fields: Mapping[str, Any],
    *,
    replace_on: tuple[str, ...] = (),
) -> None:
    """``INSERT`` one row of ``fields`` (column names are the field names); with
    ``replace_on``, a row with the same key has its other columns replaced (an upsert)."""
    row = encode(fields)
    sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
    if replace_on:
        updates = ", ".join(f"{name} = excluded.{name}" for name in row if name not in replace_on)
        sql += f" ON CONFLICT ({', '.join(replace_on)}) DO UPDATE SET {updates}"
    conn.execute(sql, tuple(row.values()))


def exists(conn: sqlite3.Connection, sql: str, value: str) -> bool:
    return conn.execute(sql, (value,)).fetchone() is not None

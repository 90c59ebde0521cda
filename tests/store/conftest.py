"""Store backends for the contract suite: SQLite, nx-27017 over the wire, real MongoDB."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from api.store import MongoStore, SqliteStore, Store
from scripts.support.nx27017 import Nx27017Server

NO_MONGODB = "MONGODB_URI not set: no real MongoDB to test against"
MONGO_KINDS = ["nx27017", "mongodb"]


@dataclass(frozen=True)
class Backend:
    """Where one test's data lives; every store it makes sees the same data."""

    kind: str
    sqlite_path: Path | None = None
    mongo_uri: str | None = None
    mongo_db: str | None = None

    def make(self) -> Store:
        """A new, unopened store object on this backend's data."""
        if self.sqlite_path is not None:
            return SqliteStore(self.sqlite_path)
        assert self.mongo_uri is not None and self.mongo_db is not None
        return MongoStore(self.mongo_uri, self.mongo_db)


def mongo_client(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    """A raw driver client configured like MongoStore's (aware UTC datetimes)."""
    return AsyncMongoClient(uri, tz_aware=True, tzinfo=UTC)


def _backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "sqlite":
        return Backend(kind, sqlite_path=tmp_path / "classroom.sqlite3")
    if kind == "nx27017":
        server: Nx27017Server = request.getfixturevalue("nx27017_server")
        uri = server.uri
    else:
        uri = os.environ.get("MONGODB_URI", "")
        if not uri:
            pytest.skip(NO_MONGODB)
    return Backend(kind, mongo_uri=uri, mongo_db=f"store_test_{uuid.uuid4().hex[:16]}")


async def _drop(backend: Backend) -> None:
    # nx-27017's databases vanish with its temporary directory; a real server's must be dropped.
    if backend.kind == "mongodb" and backend.mongo_uri and backend.mongo_db:
        client = mongo_client(backend.mongo_uri)
        try:
            await client.drop_database(backend.mongo_db)
        finally:
            await client.close()


@pytest.fixture(params=["sqlite", *MONGO_KINDS])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend in turn, on fresh, empty data."""
    chosen = _backend(request.param, request, tmp_path)
    yield chosen
    await _drop(chosen)


@pytest.fixture(params=MONGO_KINDS)
async def mongo_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The Mongo backends only (nx-27017, and MongoDB when ``MONGODB_URI`` is set)."""
    chosen = _backend(request.param, request, tmp_path)
    yield chosen
    await _drop(chosen)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    """An opened store on an empty database, closed after the test."""
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def nx_db(nx27017_server: Nx27017Server) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A fresh database on the nx-27017 server, through the raw driver."""
    client = mongo_client(nx27017_server.uri)
    try:
        yield client[f"gap_{uuid.uuid4().hex[:16]}"]
    finally:
        await client.close()

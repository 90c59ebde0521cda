"""Persistence: the :class:`Store` interface and the backend the settings choose."""

from __future__ import annotations

from ..config import Settings
from .base import Store
from .mongo import MongoStore
from .sqlite import SqliteStore

__all__ = ["MongoStore", "SqliteStore", "Store", "open_store"]

SQLITE_FILE_NAME = "classroom.sqlite3"


async def open_store(settings: Settings) -> Store:
    """An opened store: MongoDB when ``settings.mongodb_uri`` is set, else SQLite in
    ``settings.data_dir`` (created if missing)."""
    store: Store
    if settings.mongodb_uri:
        store = MongoStore(
            settings.mongodb_uri,
            settings.mongodb_db,
            timeout_seconds=settings.mongodb_timeout_seconds,
        )
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(
            settings.data_dir / SQLITE_FILE_NAME,
            busy_timeout=settings.sqlite_busy_timeout_seconds,
        )
    await store.open()
    return store

"""The embedded backend: stdlib ``sqlite3`` on one dedicated thread.

Every method ships its work to a single-thread executor that owns the only connection
(:mod:`.base`), so writes are serialised without locks in Python and the event loop never
blocks on disk. Single-statement writes commit on their own; multi-step ones run inside
``BEGIN IMMEDIATE``. Datetimes are ISO-8601 text with milliseconds (``api.timeutil.iso_ms``),
which sorts in time order and reads back as aware UTC. Column names are the field names of
``api.store.records``, which builds every entity. The schema and its migrations are in
:mod:`.schema`; each resource's queries in their own module.
"""

from __future__ import annotations

from .accounts import SqliteAccounts
from .activity import SqliteActivity
from .attendance import SqliteAttendance
from .presence import SqlitePresence
from .recordings import SqliteRecordings

__all__ = ["SqliteStore"]


class SqliteStore(
    SqliteAccounts, SqliteAttendance, SqlitePresence, SqliteActivity, SqliteRecordings
):
    """A :class:`~api.store.Store` in one SQLite file (WAL); the default when no MongoDB
    is configured."""

"""A store that cannot take a request now is an outage the client is told about, not a
server bug: the errors of the backends' drivers that mean "unreachable, locked or full
now" become `ServiceUnavailable` (503) or `InsufficientStorage` (507), or an ``ERROR``
on the WebSocket, each condition with one message."""

from __future__ import annotations

import sqlite3

from pymongo.errors import ConnectionFailure

from ..errors import ApiError, InsufficientStorage, ServiceUnavailable

STORE_UNAVAILABLE = "Storage unavailable, try again shortly"
STORE_FULL = "Storage full"

# Primary result codes (the low byte of an extended code such as SQLITE_BUSY_SNAPSHOT).
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_SQLITE_FULL_CODES = frozenset({sqlite3.SQLITE_FULL})


def outage_error(error: BaseException) -> ApiError | None:
    """The client error for `error` if it says the store cannot take requests now, else
    None.

    MongoDB: `ConnectionFailure` covers the driver's server selection timeout, lost
    connections (``AutoReconnect``) and network timeouts; the client reconnects on its own
    once the store is back, so the next request after that succeeds. SQLite: a lock held
    by another connection for longer than the busy timeout (``database is locked``) is the
    same 503; a full disk or ``max_page_count`` reached (``database or disk is full``) is
    507 `STORE_FULL`. Both roll the statement back: nothing of the request was stored.
    """
    if isinstance(error, ConnectionFailure):
        return ServiceUnavailable(STORE_UNAVAILABLE)
    if isinstance(error, sqlite3.OperationalError):
        code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
        if code in _SQLITE_BUSY_CODES:
            return ServiceUnavailable(STORE_UNAVAILABLE)
        if code in _SQLITE_FULL_CODES:
            return InsufficientStorage(STORE_FULL)
    return None

"""The MongoDB backend, through PyMongo Async (``AsyncMongoClient``).

The documents are designed to be read and written the same way by MongoDB and by nx-27017
(the SQLite-backed server the tests run against), whose gaps are pinned in
``tests/store/test_nx27017_gaps.py``:

- Each document's ``_id`` is a real ``ObjectId``, a 24-hex string at the boundary; a malformed
  id reads as "no such record".
- References to other documents (``teacherId``, ``studentIds``, ``classId``, ``sessionId``, ...)
  are 24-hex strings: nx-27017 never matches an ``ObjectId`` value in a filter on any field
  but ``_id``.
- Dates are written only by inserts and whole-document replaces: nx-27017 stores a datetime
  written by an update operator (``$set``, ``$min``) as a naive string.
- Array membership is asked with ``$elemMatch``: nx-27017 finds nothing by element equality
  on an indexed array.
- No ``$setOnInsert``, positional ``$``, ``arrayFilters``, ``$lookup``, ``$push`` of
  subdocuments, and no unique index on a field that may be missing.

Collections: ``users`` (unique ``email``, stored lowercased), ``classes`` (``studentIds`` is a
top-level array grown with ``$addToSet``; ``policy``, ``allowStudentRecordings`` and
``allowStudentScreenShare`` read as the defaults when missing, as in documents written before
they existed; ``rev`` counts changes so a settings update can be a compare-and-swap),
``sessions``, ``active_sessions`` (one pointer per class whose ``_id`` is the class id, so
the uniqueness of ``_id`` is the "one active session per class" rule), ``marks`` (one
document per (session, student), unique compound index, replaced with ``upsert``),
``presence_events`` (insert-only, ordered by a per-session ``seq`` drawn from
``presence_seq``, not from the session document, which ``end_session`` replaces whole) and
``presence_counters`` (one document per (session, user), unique compound index, replaced
with ``upsert``) and ``activity`` (chat and hands, insert-only, ordered by a per-session
``seq`` drawn from ``activity_seq``; ``data`` is the event's own subdocument).

Each resource's methods live in their own module (accounts, sessions, presence, recordings);
every entity is built by ``api.store.records`` through :mod:`.documents`.
"""

from __future__ import annotations

from .accounts import MongoAccounts
from .activity import MongoActivity
from .presence import MongoPresence
from .recordings import MongoRecordings
from .sessions import STALE_POINTER_AFTER, MongoSessions

__all__ = ["STALE_POINTER_AFTER", "MongoStore"]


class MongoStore(MongoAccounts, MongoSessions, MongoPresence, MongoActivity, MongoRecordings):
    """A :class:`~api.store.Store` in one MongoDB database; chosen when ``MONGODB_URI`` is
    set."""

"""MongoStore recovers from a crash between the two writes of starting or ending a session.

A crash is simulated by writing, with the raw driver, exactly the state the crash would
leave: an ``active_sessions`` pointer without its session, or naming an ended one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from api.errors import SESSION_ALREADY_ACTIVE, Conflict
from api.ids import new_id
from api.models import ClassRecord, SessionSummary
from api.store import MongoStore, Store
from api.store.mongo import STALE_POINTER_AFTER
from api.timeutil import utcnow
from tests.store.conftest import Backend, mongo_client

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SUMMARY = SessionSummary(present=0, absent=0, total=0)


@pytest.fixture
async def store(mongo_backend: Backend) -> AsyncIterator[Store]:
    opened = mongo_backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def pointers(mongo_backend: Backend) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    """The raw ``active_sessions`` collection of the store under test."""
    assert mongo_backend.mongo_uri and mongo_backend.mongo_db
    client = mongo_client(mongo_backend.mongo_uri)
    try:
        yield client[mongo_backend.mongo_db]["active_sessions"]
    finally:
        await client.close()


async def new_class(store: Store) -> ClassRecord:
    teacher = await store.create_user(name="T", email=f"t{new_id()}@school.test", role="teacher")
    return await store.create_class(class_name="Physics", teacher_id=teacher.id)


async def test_the_active_pointer_is_keyed_by_the_class_id(
    store: Store, pointers: AsyncCollection[dict[str, Any]]
) -> None:
    cls = await new_class(store)
    session = await store.start_session(class_id=cls.id, teacher_id=cls.teacher_id, started_at=T0)
    pointer = await pointers.find_one({})
    assert pointer is not None
    assert (pointer["_id"], pointer["sessionId"]) == (ObjectId(cls.id), session.id)


async def test_a_pointer_left_by_a_crash_while_ending_is_ignored_and_replaced(
    store: Store, pointers: AsyncCollection[dict[str, Any]]
) -> None:
    cls = await new_class(store)
    ended = await store.start_session(class_id=cls.id, teacher_id=cls.teacher_id, started_at=T0)
    await store.end_session(ended.id, ended_at=T0 + timedelta(hours=1), summary=SUMMARY)
    await pointers.insert_one({"_id": ObjectId(cls.id), "sessionId": ended.id, "createdAt": T0})

    assert await store.get_active_session(cls.id) is None
    assert await store.list_active_sessions() == []
    again = await store.start_session(
        class_id=cls.id, teacher_id=cls.teacher_id, started_at=T0 + timedelta(days=1)
    )
    assert await store.get_active_session(cls.id) == again


async def test_an_old_pointer_left_by_a_crash_while_starting_is_ignored_and_replaced(
    store: Store, pointers: AsyncCollection[dict[str, Any]]
) -> None:
    cls = await new_class(store)
    crashed_at = utcnow() - STALE_POINTER_AFTER - timedelta(seconds=1)
    orphan = {"_id": ObjectId(cls.id), "sessionId": new_id(), "createdAt": crashed_at}
    await pointers.insert_one(orphan)

    assert await store.get_active_session(cls.id) is None
    assert await store.list_active_sessions() == []
    session = await store.start_session(class_id=cls.id, teacher_id=cls.teacher_id, started_at=T0)
    assert await store.get_active_session(cls.id) == session


async def test_a_young_pointer_without_its_session_may_be_a_start_in_progress(
    store: Store, pointers: AsyncCollection[dict[str, Any]]
) -> None:
    cls = await new_class(store)
    await pointers.insert_one(
        {"_id": ObjectId(cls.id), "sessionId": new_id(), "createdAt": utcnow()}
    )
    assert await store.get_active_session(cls.id) is None
    with pytest.raises(Conflict) as caught:
        await store.start_session(class_id=cls.id, teacher_id=cls.teacher_id, started_at=T0)
    assert caught.value.message == SESSION_ALREADY_ACTIVE


async def test_every_write_waits_for_a_majority_and_the_journal(
    mongo_backend: Backend, store: Store
) -> None:
    # The concern the driver sends with each write, read from the collections the store
    # writes through, for every collection it has made (the emulator accepts the concern;
    # a real MongoDB applies it).
    assert isinstance(store, MongoStore)
    client = mongo_client(mongo_backend.mongo_uri or "")
    try:
        names = await client[mongo_backend.mongo_db or ""].list_collection_names()
    finally:
        await client.close()
    assert {"users", "sessions", "marks", "presence_events"} <= set(names)
    for name in names:
        concern = store._col(name).write_concern
        assert (concern.document, concern.acknowledged) == ({"w": "majority", "j": True}, True)

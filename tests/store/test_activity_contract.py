"""Room activity (chat, hands): the same behaviour on every backend. Insert-only, listed in
append order (even within one millisecond and under concurrent appends), filtered by kind,
one session's never another's, every text and JSON value back as written."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from api.ids import new_id
from api.models import ActivityEvent, ActivityKind, AttendanceSession, User
from api.store import Store
from tests.store.test_store_contract import T0, malformed_ids, session_with_students


def activity(
    session: AttendanceSession,
    user: User,
    kind: ActivityKind = "chat",
    at: datetime = T0,
    **data: Any,
) -> ActivityEvent:
    return ActivityEvent(
        id=new_id(),
        session_id=session.id,
        class_id=session.class_id,
        user_id=user.id,
        kind=kind,
        at=at,
        data=data,
    )


async def test_activity_is_listed_in_append_order_and_filtered_by_kind(store: Store) -> None:
    session, [kim, sam] = await session_with_students(store, 2)
    other, [lee] = await session_with_students(store, 1)
    same_ms = T0 + timedelta(seconds=30)
    said = activity(session, kim, "chat", same_ms, text="hello", name="Kim", role="student")
    appended = [
        said,
        activity(session, sam, "hand", same_ms, raised=True, by=sam.id),
        activity(session, kim, "chat_deleted", same_ms, messageId=said.id),
        # Appended after, stamped earlier: the order is the append order, not the time.
        activity(session, sam, "hand", T0, raised=False, by=kim.id),
    ]
    appended += [activity(session, kim, "chat", same_ms, text=str(n)) for n in range(10)]
    for index, each in enumerate(appended):
        await store.append_activity(each)
        if index == 1:
            await store.append_activity(activity(other, lee, "chat", text="elsewhere"))
    assert await store.list_activity(session.id) == appended
    hands = [e for e in appended if e.kind == "hand"]
    assert await store.list_activity(session.id, ["hand"]) == hands
    chat = [e for e in appended if e.kind != "hand"]
    assert await store.list_activity(session.id, ("chat", "chat_deleted")) == chat
    assert await store.list_activity(session.id, []) == []
    assert [e.data["text"] for e in await store.list_activity(other.id)] == ["elsewhere"]


async def test_concurrent_appends_keep_their_call_order(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    appended = [activity(session, kim, text=f"m{i}") for i in range(20)]
    await asyncio.gather(*(store.append_activity(each) for each in appended))
    assert await store.list_activity(session.id) == appended


async def test_text_and_json_values_read_back_as_written(store: Store) -> None:
    session, [kim] = await session_with_students(store, 1)
    texts = [
        "<b>bold</b> <img src=x onerror=alert(1)> & \"quotes\" 'single'",
        "línea\nnueva\ttab — 日本語 😀 \u200b",
        "x" * 2000,
        "$where: 1; {'$gt': ''}",
    ]
    written = [activity(session, kim, text=text, name="Kim", role="student") for text in texts]
    written.append(activity(session, kim, "hand", raised=True, by=kim.id, nested={"a": [1, None]}))
    for each in written:
        await store.append_activity(each)
    assert await store.list_activity(session.id) == written


@pytest.mark.parametrize("session_id", [*malformed_ids(), new_id()])
async def test_unknown_and_malformed_sessions_have_no_activity(
    store: Store, session_id: str
) -> None:
    session, [kim] = await session_with_students(store, 1)
    await store.append_activity(activity(session, kim, text="hi"))
    assert await store.list_activity(session_id) == []
    assert await store.list_activity(session_id, ["chat"]) == []

"""Where nx-27017 (0.8.1) differs from MongoDB, pinned with the raw driver, and proof that
MongoStore's documents never depend on those differences.

Each gap test asserts nx-27017's *actual* behaviour and says what MongoDB does instead. If
one starts failing, nx-27017 changed: re-check the gap, then update docs/mongodb.md ("nx-27017
and its gaps") and this file.
"""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, WriteError

from api.ids import new_id
from api.models import AttendanceMark, AttendanceStatus, SessionSummary
from api.store import MongoStore
from scripts.support.nx27017 import Nx27017Server
from tests.store.conftest import mongo_client

Db = AsyncDatabase[dict[str, Any]]
T0 = datetime(2026, 11, 26, 23, 1, 4, 123000, tzinfo=UTC)


async def test_the_server_under_test_really_is_nx27017(nx_db: Db) -> None:
    info = await nx_db.client.admin.command("buildInfo")
    assert info["process"] == "nx_27017"


# -- gaps listed in docs/mongodb.md -------------------------------------------------------


async def test_positional_inc_writes_a_literal_dollar_field_instead_of_the_element(
    nx_db: Db,
) -> None:
    await nx_db.c.insert_one({"_id": 1, "items": [{"k": "a", "n": 1}, {"k": "b", "n": 1}]})
    result = await nx_db.c.update_one({"_id": 1, "items.k": "b"}, {"$inc": {"items.$.n": 5}})
    assert result.modified_count == 1
    # MongoDB: items[1].n == 6 and no new field.
    assert await nx_db.c.find_one({"_id": 1}) == {
        "_id": 1,
        "items": [{"k": "a", "n": 1}, {"k": "b", "n": 1}],
        "items.$.n": 5,
    }


async def test_positional_push_writes_a_literal_dollar_field_instead_of_the_element(
    nx_db: Db,
) -> None:
    await nx_db.c.insert_one({"_id": 1, "items": [{"k": "a", "l": []}, {"k": "b", "l": []}]})
    await nx_db.c.update_one({"_id": 1, "items.k": "b"}, {"$push": {"items.$.l": 7}})
    # MongoDB: items[1].l == [7].
    doc = await nx_db.c.find_one({"_id": 1})
    assert doc is not None
    assert doc["items"] == [{"k": "a", "l": []}, {"k": "b", "l": []}]
    assert doc["items.$.l"] == [7]


async def test_array_filters_match_the_document_but_change_nothing(nx_db: Db) -> None:
    await nx_db.c.insert_one({"_id": 1, "items": [{"k": "a", "n": 1}, {"k": "b", "n": 1}]})
    result = await nx_db.c.update_one(
        {"_id": 1}, {"$set": {"items.$[e].n": 9}}, array_filters=[{"e.k": "b"}]
    )
    # MongoDB: modified_count == 1 and items[1].n == 9.
    assert (result.matched_count, result.modified_count) == (1, 0)
    doc = await nx_db.c.find_one({"_id": 1})
    assert doc is not None and doc["items"][1] == {"k": "b", "n": 1}


async def test_set_on_insert_is_dropped_by_find_one_and_update_upserts(nx_db: Db) -> None:
    doc = await nx_db.c.find_one_and_update(
        {"k": 1},
        {"$set": {"v": 1}, "$setOnInsert": {"first": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    # MongoDB: the inserted document has first == 1.
    assert doc is not None and "first" not in doc


async def test_set_on_insert_with_a_dotted_path_stores_a_literal_dotted_key(nx_db: Db) -> None:
    await nx_db.c.update_one({"k": 1}, {"$setOnInsert": {"a.b": 1}}, upsert=True)
    doc = await nx_db.c.find_one({"k": 1})
    # MongoDB: {"a": {"b": 1}}.
    assert doc is not None and doc["a.b"] == 1 and "a" not in doc


async def test_set_on_insert_does_work_for_a_plain_update_one_upsert(nx_db: Db) -> None:
    # Not every $setOnInsert is wrong in 0.8.1: this common form behaves like MongoDB.
    for value in (1, 2):
        await nx_db.c.update_one(
            {"k": 1}, {"$set": {"v": value}, "$setOnInsert": {"first": value}}, upsert=True
        )
    doc = await nx_db.c.find_one({"k": 1}, {"_id": 0})
    assert doc == {"k": 1, "v": 2, "first": 1}


async def test_lookup_with_an_array_local_field_joins_nothing(nx_db: Db) -> None:
    await nx_db.classes.insert_one({"_id": "c1", "studentIds": ["u1", "u2"]})
    await nx_db.users.insert_many([{"_id": "u1"}, {"_id": "u2"}, {"_id": "u3"}])
    pipeline: list[dict[str, Any]] = [
        {
            "$lookup": {
                "from": "users",
                "localField": "studentIds",
                "foreignField": "_id",
                "as": "students",
            }
        }
    ]
    joined = await (await nx_db.classes.aggregate(pipeline)).to_list()
    # MongoDB: students == [{"_id": "u1"}, {"_id": "u2"}].
    assert joined == [{"_id": "c1", "studentIds": ["u1", "u2"], "students": []}]


async def test_min_on_a_date_stores_a_naive_string(nx_db: Db) -> None:
    await nx_db.c.insert_one({"_id": 1, "t": T0})
    await nx_db.c.update_one({"_id": 1}, {"$min": {"t": T0 - timedelta(days=1)}})
    doc = await nx_db.c.find_one({"_id": 1})
    # MongoDB: t == T0 - 1 day, still a date.
    assert doc is not None and doc["t"] == "2026-11-25 23:01:04.123000"


async def test_a_unique_index_admits_many_documents_missing_the_field(nx_db: Db) -> None:
    await nx_db.c.create_index("externalId", unique=True)
    await nx_db.c.insert_one({"name": "a"})
    # MongoDB: DuplicateKeyError here (a missing field is indexed as null).
    await nx_db.c.insert_one({"name": "b"})
    assert len(await nx_db.c.find({}).to_list()) == 2
    await nx_db.c.insert_one({"externalId": "x"})
    with pytest.raises(DuplicateKeyError):
        await nx_db.c.insert_one({"externalId": "x"})


# -- gaps found while building MongoStore ----------------------------------------------------


async def test_an_object_id_outside_the_id_field_never_matches_a_filter(nx_db: Db) -> None:
    ref = ObjectId()
    await nx_db.c.insert_one({"_id": ObjectId(), "classId": ref, "refs": [ref]})
    # MongoDB: every one of these finds the document.
    assert await nx_db.c.find({"classId": ref}).to_list() == []
    assert await nx_db.c.find({"classId": {"$eq": ref}}).to_list() == []
    assert await nx_db.c.find({"refs": ref}).to_list() == []
    deleted = await nx_db.c.delete_one({"classId": ref})
    assert deleted.deleted_count == 0
    # Upserting on such a filter inserts a duplicate instead of updating.
    key = {"sessionId": ref}
    for status in ("present", "absent"):
        await nx_db.m.update_one(key, {"$set": {**key, "status": status}}, upsert=True)
    assert len(await nx_db.m.find({}).to_list()) == 2


async def test_a_date_written_by_set_on_an_existing_document_becomes_a_naive_string(
    nx_db: Db,
) -> None:
    await nx_db.c.insert_one({"_id": 1, "startedAt": T0})
    await nx_db.c.update_one({"_id": 1}, {"$set": {"endedAt": T0, "x.y": T0}})
    doc = await nx_db.c.find_one({"_id": 1})
    # MongoDB: both are dates. Inserts, upsert-inserts and replace_one keep dates.
    assert doc is not None
    assert doc["startedAt"] == T0
    assert doc["endedAt"] == "2026-11-26 23:01:04.123000"
    assert doc["x"] == {"y": "2026-11-26 23:01:04.123000"}


async def test_the_second_set_upsert_of_a_mark_turns_its_date_into_a_string(nx_db: Db) -> None:
    key = {"sessionId": new_id(), "studentId": new_id()}
    for status in ("present", "absent"):
        await nx_db.m.update_one(
            key, {"$set": {**key, "status": status, "markedAt": T0}}, upsert=True
        )
    doc = await nx_db.m.find_one(key)
    # MongoDB: markedAt stays a date. The first (inserting) upsert did keep it a date.
    assert doc is not None and doc["markedAt"] == "2026-11-26 23:01:04.123000"


async def test_a_subdocument_pushed_onto_an_array_is_stored_as_a_json_string(nx_db: Db) -> None:
    await nx_db.c.insert_one({"_id": 1, "events": []})
    await nx_db.c.update_one({"_id": 1}, {"$push": {"events": {"kind": "join"}}})
    doc = await nx_db.c.find_one({"_id": 1})
    # MongoDB: events == [{"kind": "join"}]. Scalars push fine.
    assert doc is not None and doc["events"] == ['{"kind":"join"}']


async def test_element_equality_on_an_indexed_array_matches_nothing(nx_db: Db) -> None:
    await nx_db.c.insert_one({"_id": 1, "studentIds": ["a", "b"]})
    assert len(await nx_db.c.find({"studentIds": "a"}).to_list()) == 1
    await nx_db.c.create_index("studentIds")
    # MongoDB: still finds it, through the multikey index.
    assert await nx_db.c.find({"studentIds": "a"}).to_list() == []
    # $elemMatch (what MongoStore asks) still works.
    found = await nx_db.c.find({"studentIds": {"$elemMatch": {"$eq": "a"}}}).to_list()
    assert [doc["_id"] for doc in found] == [1]


async def test_an_array_value_in_an_update_filter_is_an_error(nx_db: Db) -> None:
    await nx_db.c.insert_one({"_id": 1, "studentIds": []})
    # MongoDB: matches the document (exact array equality). Loud, at least.
    with pytest.raises(WriteError, match="binding parameter"):
        await nx_db.c.update_one({"studentIds": []}, {"$set": {"x": 1}})


# -- MongoStore does not depend on any of them ------------------------------------------------


_FORBIDDEN_OPERATORS = {
    "$set": "dates written by $set become strings",
    "$setOnInsert": "dropped or misplaced by some upsert paths",
    "$min": "dates become strings",
    "$max": "dates become strings",
    "$currentDate": "an update operator writing a date",
    "$push": "subdocuments become JSON strings",
    "$lookup": "joins nothing on array fields",
}


def _mongo_backend_sources() -> list[Path]:
    """Every module of the MongoDB backend (``api/store/mongo/``)."""
    return sorted(Path(inspect.getfile(MongoStore)).parent.glob("*.py"))


def _code_strings_and_keywords() -> tuple[set[str], set[str]]:
    """String literals (docstrings excluded) and keyword-argument names in every module of
    the MongoDB backend."""
    strings: set[str] = set()
    keywords: set[str] = set()
    for path in _mongo_backend_sources():
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        strings |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            if id(node) not in docstrings
        }
        keywords |= {
            node.arg for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg
        }
    return strings, keywords


def test_mongo_store_uses_none_of_the_operators_nx27017_gets_wrong() -> None:
    strings, keywords = _code_strings_and_keywords()
    used = {op: why for op, why in _FORBIDDEN_OPERATORS.items() if op in strings}
    assert used == {}
    assert not [s for s in strings if ".$" in s or "$[" in s], "positional update paths"
    assert "array_filters" not in keywords
    assert "$addToSet" in strings and "$elemMatch" in strings  # the scan does see operators


async def _raw_docs(server: Nx27017Server, db_name: str, name: str) -> list[dict[str, Any]]:
    client = mongo_client(server.uri)
    try:
        return await client[db_name][name].find({}).to_list()
    finally:
        await client.close()


async def test_mongo_store_documents_keep_object_ids_hex_references_and_real_dates(
    nx27017_server: Nx27017Server,
) -> None:
    db_name = f"design_{new_id()}"
    store = MongoStore(nx27017_server.uri, db_name)
    await store.open()
    try:
        teacher = await store.create_user(name="T", email="t@school.test", role="teacher")
        student = await store.create_user(name="S", email="s@school.test", role="student")
        cls = await store.create_class(class_name="Physics", teacher_id=teacher.id)
        await store.add_student(cls.id, student.id)
        session = await store.start_session(class_id=cls.id, teacher_id=teacher.id, started_at=T0)
        marks: list[tuple[AttendanceStatus, int]] = [("present", 1), ("absent", 2)]
        for status, second in marks:
            await store.put_mark(
                AttendanceMark(
                    session_id=session.id,
                    class_id=cls.id,
                    student_id=student.id,
                    status=status,
                    source="teacher",
                    marked_at=T0 + timedelta(seconds=second),
                )
            )
        summary = SessionSummary(present=0, absent=1, total=1)
        await store.end_session(session.id, ended_at=T0 + timedelta(hours=1), summary=summary)
    finally:
        await store.close()

    [class_doc] = await _raw_docs(nx27017_server, db_name, "classes")
    assert class_doc["_id"] == ObjectId(cls.id)
    assert class_doc["teacherId"] == teacher.id and class_doc["studentIds"] == [student.id]
    [session_doc] = await _raw_docs(nx27017_server, db_name, "sessions")
    assert session_doc["_id"] == ObjectId(session.id) and session_doc["classId"] == cls.id
    assert session_doc["endedAt"] == T0 + timedelta(hours=1)
    [mark_doc] = await _raw_docs(nx27017_server, db_name, "marks")
    assert mark_doc["status"] == "absent"
    assert mark_doc["markedAt"] == T0 + timedelta(seconds=2)
    assert await _raw_docs(nx27017_server, db_name, "active_sessions") == []

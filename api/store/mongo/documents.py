"""Fields (``api.store.records``) as MongoDB documents and back, and lookups by id.

The document of a record is its fields under camelCase names, with ``id`` as the
``ObjectId`` ``_id``, the class policy under ``policy`` and a session summary under
``summary`` (``None`` while the session runs). Optional user fields are left out when unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from ...ids import is_object_id
from ..records import Fields

Doc = dict[str, Any]

_SUBDOCUMENTS: dict[str, dict[str, str]] = {
    "policy": {"present_ratio": "presentRatio", "late_after_seconds": "lateAfterSeconds"},
    "summary": {
        "summary_present": "present",
        "summary_absent": "absent",
        "summary_total": "total",
        "summary_late": "late",
    },
}
_NESTED = {
    field: (parent, key) for parent, keys in _SUBDOCUMENTS.items() for field, key in keys.items()
}
_OMITTED_WHEN_NONE = frozenset({"password_hash", "external_id"})


def camel(name: str) -> str:
    """``teacher_id`` → ``teacherId``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def snake(name: str) -> str:
    """``teacherId`` → ``teacher_id``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def to_doc(fields: Mapping[str, Any]) -> Doc:
    """The document that stores ``fields``."""
    doc: Doc = {}
    for name, value in fields.items():
        if name == "id":
            doc["_id"] = ObjectId(value)
        elif name in _NESTED:
            parent, key = _NESTED[name]
            doc.setdefault(parent, {})[key] = value
        elif value is not None or name not in _OMITTED_WHEN_NONE:
            doc[camel(name)] = value
    for parent in _SUBDOCUMENTS:
        if parent in doc and all(value is None for value in doc[parent].values()):
            doc[parent] = None
    return doc


def from_doc(doc: Mapping[str, Any]) -> Fields:
    """The fields ``doc`` stores (``id`` as a 24-hex string; subdocuments flattened)."""
    fields: Fields = {}
    for key, value in doc.items():
        if key == "_id":
            fields["id"] = str(value)
        elif key in _SUBDOCUMENTS:
            names = {inner: name for name, inner in _SUBDOCUMENTS[key].items()}
            for inner, inner_value in (value or {}).items():
                if inner in names:
                    fields[names[inner]] = inner_value
        else:
            fields[snake(key)] = value
    return fields


def oid(value: str) -> ObjectId | None:
    """The ObjectId an id string names; ``None`` unless it is the canonical lowercase form
    we hand out (SQLite compares the text, so ``"AB…"`` must not find ``"ab…"`` here either)."""
    return ObjectId(value) if is_object_id(value) and value == value.lower() else None


async def by_id(collection: AsyncCollection[Doc], record_id: str) -> Doc | None:
    found = oid(record_id)
    return await collection.find_one({"_id": found}) if found is not None else None

"""Typed identifiers: 24-hex ObjectId strings in every store."""

from __future__ import annotations

from typing import NewType

from bson import ObjectId

UserId = NewType("UserId", str)
ClassId = NewType("ClassId", str)
SessionId = NewType("SessionId", str)
RoomId = NewType("RoomId", str)


def new_id() -> str:
    """A fresh 24-hex ObjectId string."""
    return str(ObjectId())


def is_object_id(value: object) -> bool:
    """True for a well-formed 24-hex ObjectId string."""
    return isinstance(value, str) and len(value) == 24 and ObjectId.is_valid(value)

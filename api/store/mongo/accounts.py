"""Users and classes in MongoDB (``users``, ``classes``)."""

from __future__ import annotations

from dataclasses import replace

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ...errors import CLASS_NOT_FOUND, EMAIL_EXISTS, STUDENT_NOT_FOUND, Conflict, NotFound
from ...models import AttendancePolicy, ClassRecord, Role, User
from ..records import class_fields, class_from, new_class, new_user, user_fields, user_from
from ..rules import TEACHER_NOT_FOUND, normalize_email
from .base import OLDEST_FIRST, MongoBase
from .documents import by_id, camel, from_doc, to_doc


class MongoAccounts(MongoBase):
    """Accounts (emails unique, stored lowercased) and classes (``studentIds`` grown with
    ``$addToSet``; ``rev`` makes a settings update a compare-and-swap)."""

    # -- users --------------------------------------------------------------
    async def create_user(
        self,
        *,
        name: str,
        email: str,
        role: Role,
        password_hash: str | None = None,
        external_id: str | None = None,
    ) -> User:
        user = new_user(
            name=name,
            email=email,
            role=role,
            password_hash=password_hash,
            external_id=external_id,
        )
        try:
            await self._users.insert_one(to_doc(user_fields(user)))
        except DuplicateKeyError:
            raise Conflict(EMAIL_EXISTS) from None
        return user

    async def get_user(self, user_id: str) -> User | None:
        doc = await by_id(self._users, user_id)
        return user_from(from_doc(doc)) if doc else None

    async def get_user_by_email(self, email: str) -> User | None:
        doc = await self._users.find_one({"email": normalize_email(email)})
        return user_from(from_doc(doc)) if doc else None

    async def get_user_by_external_id(self, external_id: str) -> User | None:
        doc = await self._users.find_one({"externalId": external_id}, sort=OLDEST_FIRST)
        return user_from(from_doc(doc)) if doc else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        # A whole-document replace, not $set (nx-27017 turns dates written by $set into
        # strings: tests/store/test_nx27017_gaps.py); the user's other fields are kept.
        doc = await by_id(self._users, user_id)
        if doc is None:
            return False
        doc[camel("password_hash")] = password_hash
        result = await self._users.replace_one({"_id": doc["_id"]}, doc)
        return result.matched_count == 1

    async def list_users(self, role: Role) -> list[User]:
        docs = await self._users.find({"role": role}).sort(OLDEST_FIRST).to_list()
        return [user_from(from_doc(doc)) for doc in docs]

    # -- classes ------------------------------------------------------------
    async def create_class(self, *, class_name: str, teacher_id: str) -> ClassRecord:
        if await by_id(self._users, teacher_id) is None:
            raise NotFound(TEACHER_NOT_FOUND)
        record = new_class(class_name=class_name, teacher_id=teacher_id)
        await self._classes.insert_one(to_doc(class_fields(record)))
        return record

    async def get_class(self, class_id: str) -> ClassRecord | None:
        doc = await by_id(self._classes, class_id)
        return class_from(from_doc(doc)) if doc else None

    async def add_student(self, class_id: str, student_id: str) -> ClassRecord:
        if await by_id(self._classes, class_id) is None:
            raise NotFound(CLASS_NOT_FOUND)
        if await by_id(self._users, student_id) is None:
            raise NotFound(STUDENT_NOT_FOUND)
        doc = await self._classes.find_one_and_update(
            {"_id": ObjectId(class_id)},
            {"$addToSet": {"studentIds": student_id}, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound(CLASS_NOT_FOUND)
        return class_from(from_doc(doc))

    async def update_class_settings(
        self,
        class_id: str,
        *,
        policy: AttendancePolicy | None = None,
        allow_student_recordings: bool | None = None,
        allow_student_screen_share: bool | None = None,
        allow_student_unmute: bool | None = None,
    ) -> ClassRecord:
        while True:
            doc = await by_id(self._classes, class_id)
            if doc is None:
                raise NotFound(CLASS_NOT_FOUND)
            current = class_from(from_doc(doc))
            updated = replace(
                current,
                policy=current.policy if policy is None else policy,
                allow_student_recordings=current.allow_student_recordings
                if allow_student_recordings is None
                else allow_student_recordings,
                allow_student_screen_share=current.allow_student_screen_share
                if allow_student_screen_share is None
                else allow_student_screen_share,
                allow_student_unmute=current.allow_student_unmute
                if allow_student_unmute is None
                else allow_student_unmute,
            )
            # A whole-document replace keeps createdAt a date on nx-27017 (no $set); matching
            # the revision read makes it a compare-and-swap, so an enrolment or another
            # settings change that landed in between is re-read rather than overwritten.
            # ``"rev": None`` also matches a document written before ``rev`` existed.
            rev = doc.get("rev")
            new_doc = {**to_doc(class_fields(updated)), "rev": (rev or 0) + 1}
            result = await self._classes.replace_one({"_id": doc["_id"], "rev": rev}, new_doc)
            if result.matched_count == 1:
                return class_from(from_doc(new_doc))

    async def list_classes_for_teacher(self, teacher_id: str) -> list[ClassRecord]:
        docs = await self._classes.find({"teacherId": teacher_id}).sort(OLDEST_FIRST).to_list()
        return [class_from(from_doc(doc)) for doc in docs]

    async def list_classes_for_student(self, student_id: str) -> list[ClassRecord]:
        # $elemMatch rather than {"studentIds": id}: nx-27017 finds nothing by element equality
        # once the array is indexed. MongoDB answers both from the same multikey index.
        enrolled = {"studentIds": {"$elemMatch": {"$eq": student_id}}}
        docs = await self._classes.find(enrolled).sort(OLDEST_FIRST).to_list()
        return [class_from(from_doc(doc)) for doc in docs]

"""Classes and enrolment: the rules around the store's class records."""

from __future__ import annotations

from . import access
from .errors import CLASS_NOT_FOUND, STUDENT_NOT_FOUND, NotFound
from .ids import is_object_id
from .models import ClassRecord, User
from .store import Store


class ClassService:
    """Creates classes, enrols students, and looks classes up with membership checks."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, class_id: str) -> ClassRecord:
        cls = await self._store.get_class(class_id) if is_object_id(class_id) else None
        if cls is None:
            raise NotFound(CLASS_NOT_FOUND)
        return cls

    async def get_for_member(self, user: User, class_id: str) -> ClassRecord:
        cls = await self.get(class_id)
        access.require_member(user, cls)
        return cls

    async def get_for_owner(self, user: User, class_id: str) -> ClassRecord:
        cls = await self.get(class_id)
        access.require_owner(user, cls)
        return cls

    async def create(self, teacher: User, class_name: str) -> ClassRecord:
        access.require_teacher(teacher)
        return await self._store.create_class(class_name=class_name, teacher_id=teacher.id)

    async def enrol(self, teacher: User, class_id: str, student_id: str) -> ClassRecord:
        cls = await self.get_for_owner(teacher, class_id)
        student = await self._store.get_user(student_id) if is_object_id(student_id) else None
        if student is None or student.role != "student":
            raise NotFound(STUDENT_NOT_FOUND)
        return await self._store.add_student(cls.id, student.id)

    async def students_of(self, cls: ClassRecord) -> list[User]:
        """The enrolled students, in enrolment order (accounts that vanished are skipped)."""
        students = [await self._store.get_user(student_id) for student_id in cls.student_ids]
        return [student for student in students if student is not None]

    async def classes_of(self, user: User) -> list[ClassRecord]:
        if user.role == "teacher":
            return await self._store.list_classes_for_teacher(user.id)
        return await self._store.list_classes_for_student(user.id)

"""Accounts and classes the browser tests set up through REST before the page takes over."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from playwright.async_api import expect

from scripts.synthpeer.api_client import Account, ClassroomApi
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage

PASSWORD = "secret-pass"
TEACHER_NAME = "Grace Hopper"


def email(role: str) -> str:
    """A fresh address, so tests never collide on the unique email rule."""
    return f"{role}-{uuid.uuid4().hex[:10]}@school.test"


async def logged_in(open_page: PageFactory, account: Account, label: str) -> ClassroomPage:
    """The page of `account`, signed in through the form."""
    page = await open_page(label)
    await page.log_in(account.email, PASSWORD)
    await expect(page.by("whoami-name")).to_have_text(account.name)
    return page


@dataclass(frozen=True)
class EnrolledClass:
    """A class of a fresh teacher (Grace Hopper) with fresh students enrolled."""

    teacher: Account
    students: tuple[Account, ...]
    class_id: str


async def enrolled_class(
    api: ClassroomApi, class_name: str, *student_names: str, start: bool = True
) -> EnrolledClass:
    """Sign up the teacher and `student_names`, create the class, enrol them all, and (with
    `start`) start its session."""
    teacher = await api.register(TEACHER_NAME, email("teacher"), "teacher", PASSWORD)
    students = [
        await api.register(name, email("student"), "student", PASSWORD) for name in student_names
    ]
    cls = await api.create_class(teacher, class_name)
    for student in students:
        await api.enrol(teacher, cls["_id"], student.id)
    if start:
        await api.start_session(teacher, cls["_id"])
    return EnrolledClass(teacher, tuple(students), cls["_id"])

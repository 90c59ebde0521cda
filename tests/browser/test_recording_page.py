"""Recording from the classroom page: the teacher's toggle and everyone's indicator."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory

pytestmark = pytest.mark.browser


async def test_the_teacher_records_and_everyone_in_the_room_sees_the_indicator(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Recorded lab", "Alice Student")
    teacher, (alice,) = live.teacher, live.students
    class_id = live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    for page in (t, a):
        await page.select_class(class_id)
        await expect(page.by("join-room")).to_be_enabled()
        await page.by("join-room").click()
        await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")
    await expect(a.by("recording-controls")).to_be_hidden()

    toggle = t.by("recording-toggle")
    await expect(toggle).to_be_enabled()
    await toggle.click()
    for page in (t, a):
        await expect(page.by("recording-indicator")).to_be_visible()
    await expect(toggle).to_have_text("Stop recording")
    await toggle.click()
    for page in (t, a):
        await expect(page.by("recording-indicator")).to_be_hidden()
    await expect(toggle).to_have_text("Start recording")
    listed = await api.call("GET", f"/class/{class_id}/recordings", token=teacher.token)
    assert len(listed) == 1 and listed[0]["status"] == "stopped"

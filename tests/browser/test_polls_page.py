"""Polls on the classroom page (real Chromium, real server): the teacher builds a poll in
the form (options added and removed), both students vote in their own pages (one changes
their vote), the teacher sees the counts live, ends it, and all three pages show the same
result, which is what the server stored for the session."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import Account, ClassroomApi
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage

pytestmark = pytest.mark.browser

QUESTION = "Which <b>planet</b> is largest?"
OPTIONS = ["Jupiter", "Saturn", "Earth"]


async def join(page: ClassroomPage, class_id: str) -> None:
    """Into the room with the camera off (the poll is text; four light pages on two cores)."""
    await page.select_class(class_id)
    await expect(page.by("join-room")).to_be_enabled()
    await page.by("join-room").click()
    await expect(page.by("polls-panel")).to_be_visible()
    await page.by("toggle-camera").click()
    await expect(page.by("self-tile")).to_have_attribute("data-video", "off")


async def vote(page: ClassroomPage, option: int) -> None:
    """Click option `option`; it is marked once the server's POLL_VOTED came back."""
    await page.by("poll-vote").nth(option).click()
    chosen = page.page.locator('[data-testid="poll-vote"][data-chosen="true"]')
    await expect(chosen).to_have_count(1)
    await expect(chosen).to_have_attribute("data-option", str(option))
    await expect(page.by("poll-vote").nth(option)).to_have_attribute("aria-pressed", "true")


async def stored_counts(
    api: ClassroomApi, teacher: Account, class_id: str, session_id: str
) -> list[int]:
    """`polls[0].counts` of the session's participation, once the server has stored them."""
    deadline = time.monotonic() + 10
    while True:
        data: dict[str, Any] = await api.call(
            "GET",
            f"/class/{class_id}/sessions/{session_id}/participation",
            token=teacher.token,
        )
        polls = data["polls"]
        if polls and polls[0]["counts"] is not None:
            assert polls[0]["question"] == QUESTION
            assert polls[0]["options"] == OPTIONS
            return [int(count) for count in polls[0]["counts"]]
        assert time.monotonic() < deadline, f"no stored counts: {polls}"
        await asyncio.sleep(0.2)


async def test_teacher_polls_students_vote_and_change_everyone_sees_the_stored_result(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Poll lab", "Alice Student", "Bob Student")
    teacher, (alice, bob), class_id = live.teacher, live.students, live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    for page in (t, a, b):
        await join(page, class_id)
    # Only the teacher has the form; the students wait for a poll.
    await expect(t.by("poll-form")).to_be_visible()
    for page in (a, b):
        await expect(page.by("poll-form")).to_be_hidden()
        await expect(page.by("poll-empty")).to_be_visible()

    # The form: two options to start with (neither removable), a third and a fourth added,
    # the fourth removed again.
    await expect(t.by("poll-option-input")).to_have_count(2)
    await expect(t.by("poll-option-remove").first).to_be_disabled()
    await t.by("poll-question").fill(QUESTION)
    await t.by("poll-option-add").click()
    await t.by("poll-option-add").click()
    await expect(t.by("poll-option-input")).to_have_count(4)
    for index, text in enumerate([*OPTIONS, "Mars"]):
        await t.by("poll-option-input").nth(index).fill(text)
    await t.by("poll-option-remove").nth(3).click()
    await expect(t.by("poll-option-input")).to_have_count(3)
    await t.by("poll-start").click()
    assert t.sent("POLL_START") == [{"question": QUESTION, "options": OPTIONS, "anonymous": False}]

    # Everyone sees the question (as text); students get one button per option.
    for page in (t, a, b):
        await expect(page.by("poll-question-text")).to_have_text(QUESTION)
        await expect(page.by("poll-current").locator("b")).to_have_count(0)
        await expect(page.by("poll-current")).not_to_contain_text("null")
    await expect(t.by("poll-form")).to_be_hidden()
    await expect(t.by("poll-option-text")).to_have_text(OPTIONS)
    await expect(t.by("poll-count")).to_have_text(["0", "0", "0"])
    await expect(t.by("poll-vote")).to_have_count(0)
    for page in (a, b):
        await expect(page.by("poll-vote")).to_have_text(OPTIONS)
        await expect(page.by("poll-count")).to_have_count(0)  # no counts before the end
        await expect(page.by("poll-end")).to_have_count(0)

    # The votes, and the teacher's live counts after each.
    await vote(a, 0)
    await expect(t.by("poll-count")).to_have_text(["1", "0", "0"])
    await vote(b, 1)
    await expect(t.by("poll-count")).to_have_text(["1", "1", "0"])
    await expect(t.by("poll-voters")).to_have_text("2 voted")
    await vote(b, 2)  # Bob changes his mind
    await expect(t.by("poll-count")).to_have_text(["1", "0", "1"])
    await expect(t.by("poll-voters")).to_have_text("2 voted")
    poll_id = t.received("POLL_STARTED")[0]["pollId"]
    assert b.sent("POLL_VOTE") == [
        {"pollId": poll_id, "option": 1},
        {"pollId": poll_id, "option": 2},
    ]
    assert [data["option"] for data in b.received("POLL_VOTED")] == [1, 2]
    assert a.received("POLL_COUNTS") == [] == b.received("POLL_COUNTS")
    for page in (a, b):
        await expect(page.by("poll-my-vote")).to_have_text("Your vote")
        await expect(page.by("poll-current")).not_to_contain_text("null")

    # The teacher ends it: the same result on all three pages.
    await t.by("poll-end").click()
    for page in (t, a, b):
        await expect(page.by("poll-current")).to_be_hidden()
        await expect(page.by("poll-result-question")).to_have_text(QUESTION)
        await expect(page.by("poll-result-text")).to_have_text(OPTIONS)
        await expect(page.by("poll-result-count")).to_have_text(["1", "0", "1"])
        await expect(page.by("poll-result-voters")).to_have_text("2 voted")
    alices = a.page.locator('[data-testid="poll-result-option"][data-chosen="true"]')
    await expect(alices).to_have_attribute("data-option", "0")
    # The teacher may start the next one.
    await expect(t.by("poll-form")).to_be_visible()
    await expect(t.by("poll-question")).to_have_value("")

    # What the server stored is what the pages showed.
    session_id = t.received("ROOM_JOINED")[0]["sessionId"]
    assert await stored_counts(api, teacher, class_id, session_id) == [1, 0, 1]
    result = t.received("POLL_RESULT")[0]
    assert result["counts"] == [1, 0, 1] and result["voters"] == 2
    for page in (t, a, b):
        await expect(page.messages.locator('[data-kind="error"]')).to_have_count(0)

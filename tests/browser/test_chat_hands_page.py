"""Chat and raised hands on the classroom page (real Chromium, real server): messages go
both ways and are shown as text, never HTML; a late joiner gets the history; the teacher's
delete takes a message off every page; a refused message stays in the input. Hands go into
one queue in the order they went up, with a ✋ on the tiles, and the teacher lowers one of
them or all."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, expect

from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage

pytestmark = pytest.mark.browser

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
HOSTILE = "<b>x</b><img src=x onerror=alert(1)>"
TEXT_OF = "(item) => item.querySelector('[data-testid=chat-text]').textContent"
# An answer to the last CHAT: my own copy came back (the input is empty) or an error shows.
ANSWERED = """() => document.querySelector('[data-testid=chat-input]').value === ''
  || document.querySelector('[data-testid=message][data-kind=error]') !== null"""


async def join(page: ClassroomPage, class_id: str) -> None:
    """Into the room with the camera off (this is about the room's text, not its video: it
    keeps four pages on two cores light); in once the chat can be written to."""
    await page.select_class(class_id)
    await expect(page.by("join-room")).to_be_enabled()
    await page.by("join-room").click()
    await expect(page.by("chat-input")).to_be_enabled()
    await page.by("toggle-camera").click()
    await expect(page.by("self-tile")).to_have_attribute("data-video", "off")


def message(page: ClassroomPage, text: str) -> Locator:
    return page.by("chat-message").filter(has_text=text)


async def say(page: ClassroomPage, text: str, *, press_enter: bool = True) -> None:
    """Send `text`; the input empties once the server's copy of it came back."""
    await page.by("chat-input").fill(text)
    if press_enter:
        await page.by("chat-input").press("Enter")
    else:
        await page.by("chat-send").click()
    await expect(page.by("chat-input")).to_have_value("")


async def no_errors(*pages: ClassroomPage) -> None:
    for page in pages:
        await expect(page.messages.locator('[data-kind="error"]')).to_have_count(0)


async def test_chat_goes_both_ways_as_text_reaches_late_joiners_and_the_teacher_deletes(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Chat lab", "Alice Student", "Bob Student", "Carol Late")
    teacher, (alice, bob, carol), class_id = live.teacher, live.students, live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    for page in (t, a, b):
        await join(page, class_id)
        await expect(page.by("chat-empty")).to_be_visible()

    # A student writes (Enter): the teacher and the other student see who and what.
    await say(a, "Is this on the test?")
    for page in (t, a, b):
        sent = message(page, "Is this on the test?")
        await expect(sent.get_by_test_id("chat-name")).to_have_text("Alice Student")
        await expect(sent.get_by_test_id("chat-text")).to_have_text("Is this on the test?")
        await expect(sent.get_by_test_id("chat-time")).to_have_attribute("datetime", ISO_TIME)
        await expect(page.by("chat-empty")).to_be_hidden()

    # The teacher answers (the Send button): both students see it, marked as the teacher's.
    await say(t, "Yes, chapter 3.", press_enter=False)
    for page in (a, b):
        answer = message(page, "Yes, chapter 3.")
        await expect(answer.get_by_test_id("chat-name")).to_have_text(teacher.name)
        await expect(answer).to_have_attribute("data-role", "teacher")

    # Markup is text: shown literally, no element made of it, no script run.
    await say(b, HOSTILE)
    for page in (t, a, b):
        hostile = message(page, "onerror")
        await expect(hostile).to_have_count(1)
        assert await hostile.evaluate(TEXT_OF) == HOSTILE
        await expect(page.by("chat-list").locator("img, b")).to_have_count(0)

    texts = ["Is this on the test?", "Yes, chapter 3.", HOSTILE]
    # Only the teacher has delete buttons.
    await expect(t.by("chat-delete")).to_have_count(3)
    for page in (a, b):
        await expect(page.by("chat-delete")).to_have_count(0)

    # A page opened after all that gets the history, oldest first.
    c = await logged_in(open_page, carol, "carol")
    await join(c, class_id)
    await expect(c.by("chat-text")).to_have_count(3)
    assert [await item.evaluate(TEXT_OF) for item in await c.by("chat-message").all()] == texts
    await expect(c.by("chat-name")).to_have_text(["Alice Student", teacher.name, "Bob Student"])
    await expect(c.by("chat-list").locator("img, b")).to_have_count(0)

    # The teacher deletes Alice's message: it goes from every page, the others stay.
    deleted = message(t, "Is this on the test?")
    message_id = await deleted.get_attribute("data-message-id")
    assert message_id
    await deleted.get_by_role("button", name="Delete message from Alice Student").click()
    for page in (t, a, b, c):
        await expect(page.by("chat-text")).to_have_text(texts[1:])
    assert t.sent("CHAT_DELETE") == [{"messageId": message_id}]
    assert [data["messageId"] for data in a.received("CHAT_DELETED")] == [message_id]
    await no_errors(t, a, b, c)

    # Too many at once: the refused message stays in the input and the reason is shown.
    refused = None
    for n in range(12):
        text = f"flood {n}"
        await b.by("chat-input").fill(text)
        await b.by("chat-input").press("Enter")
        await b.page.wait_for_function(ANSWERED)
        if await b.by("chat-input").input_value():
            refused = n
            break
    assert refused is not None, "twelve messages in a row were all accepted"
    await expect(b.messages).to_contain_text("Message not sent: Too many chat messages, slow down")
    await expect(b.by("chat-input")).to_have_value(f"flood {refused}")
    await expect(b.by("chat-send")).to_be_enabled()
    await expect(t.by("chat-message").filter(has_text="flood ")).to_have_count(refused)
    await no_errors(t, a, c)


async def test_hands_queue_in_order_and_the_teacher_lowers_one_or_all(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Hands lab", "Alice Student", "Bob Student")
    teacher, (alice, bob), class_id = live.teacher, live.students, live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    for page in (t, a, b):
        await join(page, class_id)
        await expect(page.by("toggle-hand")).to_have_text("Raise hand")
        await expect(page.by("hands-empty")).to_be_visible()
    for page in (t, a, b):
        await expect(page.by("remote-tile")).to_have_count(2)
    await expect(t.by("hands-lower-all")).to_be_disabled()
    for page in (a, b):
        await expect(page.by("hands-lower-all")).to_be_hidden()

    # Alice raises her hand: everyone sees her in the queue and a ✋ on her tile.
    await a.by("toggle-hand").click()
    await expect(a.by("toggle-hand")).to_have_text("Lower hand")
    await expect(a.by("toggle-hand")).to_have_attribute("aria-pressed", "true")
    await expect(a.by("self-tile")).to_have_attribute("data-hand", "raised")
    await expect(a.by("self-hand")).to_be_visible()
    await expect(a.by("hand-name")).to_have_text(["Alice Student (you)"])
    for page, other in ((t, bob), (b, teacher)):
        await expect(page.by("hand-name")).to_have_text(["Alice Student"])
        tile = page.remote_tile(alice.id)
        await expect(tile).to_have_attribute("data-hand", "raised")
        await expect(tile.get_by_test_id("tile-hand")).to_be_visible()
        await expect(tile.get_by_test_id("tile-hand")).to_have_text("✋ Hand up")
        await expect(page.remote_tile(other.id)).to_have_attribute("data-hand", "down")
    for page in (a, b):
        await expect(page.by("hand-lower")).to_have_count(0)

    # The teacher lowers it with its own button: Alice's button offers to raise it again.
    await t.by("hand-item").get_by_role("button", name="Lower Alice Student's hand").click()
    await expect(a.by("toggle-hand")).to_have_text("Raise hand")
    await expect(a.by("toggle-hand")).to_have_attribute("aria-pressed", "false")
    await expect(a.messages).to_contain_text("The teacher lowered your hand.")
    for page in (t, a, b):
        await expect(page.by("hand-item")).to_have_count(0)
        await expect(page.by("hands-empty")).to_be_visible()
    await expect(t.remote_tile(alice.id)).to_have_attribute("data-hand", "down")
    await expect(t.remote_tile(alice.id).get_by_test_id("tile-hand")).to_be_hidden()

    # Two hands, Bob's first: the queue keeps that order; Lower all hands clears it.
    await b.by("toggle-hand").click()
    await expect(t.by("hand-name")).to_have_text(["Bob Student"])
    await a.by("toggle-hand").click()
    for page in (t, a, b):
        await expect(page.by("hand-item")).to_have_count(2)
    await expect(t.by("hand-name")).to_have_text(["Bob Student", "Alice Student"])
    await expect(b.by("hand-name")).to_have_text(["Bob Student (you)", "Alice Student"])
    await expect(t.by("hand-lower")).to_have_count(2)
    await expect(t.by("hands-lower-all")).to_be_enabled()
    await t.by("hands-lower-all").click()
    for page in (t, a, b):
        await expect(page.by("hand-item")).to_have_count(0)
        await expect(page.by("toggle-hand")).to_have_text("Raise hand")
    await expect(t.by("hands-lower-all")).to_be_disabled()
    assert t.sent("HAND_LOWER") == [{"userId": alice.id}, {"all": True}]

    # A student lowers their own hand; one who leaves the room takes theirs down.
    await a.by("toggle-hand").click()
    await b.by("toggle-hand").click()
    await expect(t.by("hand-name")).to_have_text(["Alice Student", "Bob Student"])
    await a.by("toggle-hand").click()
    await expect(t.by("hand-name")).to_have_text(["Bob Student"])
    await expect(a.by("toggle-hand")).to_have_text("Raise hand")
    await b.by("leave-room").click()
    for page in (t, a):
        await expect(page.by("hand-item")).to_have_count(0)
    assert [data["raised"] for data in a.sent("HAND")] == [True, True, True, False]
    await no_errors(t, a, b)

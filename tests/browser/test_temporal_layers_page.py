"""A screen share in VP8 temporal layers, between real Chromium pages: the page shares in
``L1T3``, a student who asks for a low frame rate gets only the base layer (``LAYERS``
says so) and goes on decoding, while another student gets every frame; lifting the cap
brings every frame back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage
from tests.browser.test_selective_page import join, received, sent, until_received
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

WINDOW = 4.0
SEND = "([event, data]) => window.classroom.state.socket.send(event, data)"


async def screen_frames_over(page: ClassroomPage, user_id: str, seconds: float) -> float:
    """Frames of `user_id`'s screen the page decoded per second, over `seconds`."""
    first = await received(page, user_id, "screen")
    await page.page.wait_for_timeout(seconds * 1000)
    last = await received(page, user_id, "screen")
    assert first is not None and last is not None
    return float(last["framesDecoded"] - first["framesDecoded"]) / seconds


async def test_a_low_frame_rate_screen_share_is_the_base_temporal_layer(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Slides at a trickle", "Alice Student", "Bob Student")
    teacher, (alice, bob) = live.teacher, live.students
    pages = [
        await logged_in(open_page, user, label)
        for user, label in ((teacher, "teacher"), (alice, "alice"), (bob, "bob"))
    ]
    t, a, b = pages
    for page in pages:
        await page.select_class(live.class_id)
        await join(page, mute_microphone=True)
    await t.by("toggle-screen").click()
    await expect(t.by("toggle-screen")).to_have_text("Stop sharing")

    async def sharing_in_layers() -> bool:
        screens = [s for s in await sent(t) if s.get("source") == "screen"]
        return bool(screens) and screens[0]["framesEncoded"] > 10

    await wait_until(sharing_in_layers, timeout=20)
    (screen,) = [s for s in await sent(t) if s.get("source") == "screen"]
    assert screen["scalabilityMode"] == "L1T3", screen
    for page in (a, b):
        await until_received(page, teacher.id, lambda s: s["framesDecoded"] > 10, source="screen")

    await b.page.evaluate(SEND, ["SUBSCRIPTION", {teacher.id: {"fps": {"screen": 1}}}])

    async def told_quarter() -> bool:
        return any(
            entry.get(teacher.id, {}).get("frameRate") == {"screen": 0.25}
            for entry in b.received("LAYERS")
        )

    # 1 fps is below even the base layer: that is what is sent.
    await wait_until(told_quarter, timeout=10)
    told: dict[str, Any] = [e for e in b.received("LAYERS") if teacher.id in e][-1][teacher.id]
    assert told["screen"] == "on" and told["reason"] == "requested"
    await b.page.wait_for_timeout(1000)  # the frames already on their way
    # Over the same window (the share's frame rate follows the teacher's CPU: 5-20 fps
    # here), Bob decodes about a quarter of what Alice does, and keeps decoding.
    full_rate, thinned_rate = await asyncio.gather(
        screen_frames_over(a, teacher.id, WINDOW), screen_frames_over(b, teacher.id, WINDOW)
    )
    assert full_rate * WINDOW >= 8, full_rate
    assert 0 < thinned_rate <= full_rate * 0.5, (thinned_rate, full_rate)

    # Lifting the cap brings every frame back, at the next base-layer frame.
    await b.page.evaluate(SEND, ["SUBSCRIPTION", {teacher.id: {"fps": {"screen": None}}}])

    async def told_whole() -> bool:
        entries = [e[teacher.id] for e in b.received("LAYERS") if teacher.id in e]
        return "frameRate" not in entries[-1]

    await wait_until(told_whole, timeout=10)
    await b.page.wait_for_timeout(1000)
    full_rate, whole_rate = await asyncio.gather(
        screen_frames_over(a, teacher.id, WINDOW), screen_frames_over(b, teacher.id, WINDOW)
    )
    assert whole_rate >= full_rate * 0.7, (whole_rate, full_rate)
    for page in pages:
        await expect(page.messages.locator('[data-kind="error"]')).to_have_count(0)

"""Teacher moderation on the classroom page (real Chromium, real server): muting a student
really stops their audio at the other students (measured in the receiver's RTP stats),
their page shows the microphone off, and where the class says so their own unmute is
refused until the teacher allows it; removing a student takes them out of the room and
keeps them out until they are readmitted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage

pytestmark = pytest.mark.browser

MUTED_BY_TEACHER = "The teacher muted you; you may not unmute yourself in this class"
REMOVED = "You were removed from this session by the teacher"
QUIET_SECONDS = 2.5  # a muted microphone sends nothing for this long (the beeps come every 1 s)


async def join(page: ClassroomPage, class_id: str, *, camera: bool = False) -> None:
    """Into the room (the camera off unless `camera`: audio is what is measured here)."""
    await page.select_class(class_id)
    await expect(page.by("join-room")).to_be_enabled()
    await page.by("join-room").click()
    await expect(page.by("leave-room")).to_be_visible()
    await expect(page.by("toggle-hand")).to_be_enabled()  # ROOM_JOINED came back
    if not camera:
        await page.by("toggle-camera").click()
        await expect(page.by("self-tile")).to_have_attribute("data-video", "off")


async def audio_packets(page: ClassroomPage, user_id: str) -> int | None:
    """Packets received so far of `user_id`'s microphone on `page` (None: no such track)."""
    stats: dict[str, Any] | None = await page.page.evaluate(
        "(userId) => window.classroom.receivedAudio(userId)", user_id
    )
    return None if stats is None else int(stats["packetsReceived"])


async def audio_grows(page: ClassroomPage, user_id: str, timeout: float = 15) -> int:
    """Wait until `user_id`'s audio arrives at `page` and its packet count grows."""
    deadline = time.monotonic() + timeout
    first = await audio_packets(page, user_id)
    while True:
        await asyncio.sleep(0.25)
        now = await audio_packets(page, user_id)
        if first is not None and now is not None and now > first:
            return now
        if first is None:
            first = now
        assert time.monotonic() < deadline, f"{user_id}'s audio never grew at {page.label}"


async def audio_stays_still(page: ClassroomPage, user_id: str) -> None:
    """After the server stops forwarding, the count settles and stays still for a while."""
    deadline = time.monotonic() + 10
    last = await audio_packets(page, user_id)
    still_since = time.monotonic()
    while time.monotonic() - still_since < QUIET_SECONDS:
        await asyncio.sleep(0.25)
        now = await audio_packets(page, user_id)
        if now != last:
            last, still_since = now, time.monotonic()
        assert time.monotonic() < deadline, f"{user_id}'s audio kept arriving at {page.label}"


async def test_muted_student_is_silent_for_the_room_and_may_not_unmute_until_allowed(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Mute lab", "Alice Student", "Bob Student")
    teacher, (alice, bob), class_id = live.teacher, live.students, live.class_id
    settings = {"allowStudentUnmute": False}
    await api.call("PUT", f"/class/{class_id}/settings", token=teacher.token, body=settings)
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    for page in (t, a, b):
        await join(page, class_id)
    for page in (a, b):
        await expect(page.by("tile-moderation")).to_have_count(0)  # students get no buttons
        await expect(page.by("moderate-mute-all")).to_be_hidden()
    alice_tile = t.remote_tile(alice.id)
    await expect(alice_tile.get_by_test_id("tile-moderation")).to_be_visible()
    await expect(t.remote_tile(bob.id).get_by_test_id("moderate-stop-screen")).to_be_hidden()
    await audio_grows(b, alice.id)

    # The teacher mutes Alice: her page turns the mic off as her own button does, Bob's tile
    # of her says so, and nothing of her microphone reaches Bob any more.
    await alice_tile.get_by_role("button", name="Mute Alice Student", exact=True).click()
    assert t.sent("MODERATE") == [{"userId": alice.id, "action": "mute"}]
    await expect(a.by("toggle-mic")).to_have_text("Unmute microphone")
    await expect(a.by("toggle-mic")).to_have_attribute("aria-pressed", "false")
    await expect(a.by("self-tile")).to_have_attribute("data-audio", "off")
    await expect(a.by("self-mic")).to_have_text("Mic muted")
    await expect(a.messages).to_contain_text("The teacher muted your microphone.")
    assert [data["action"] for data in a.received("MODERATED")] == ["mute"]
    for page in (t, b):
        tile = page.remote_tile(alice.id)
        await expect(tile).to_have_attribute("data-audio", "off")
        await expect(tile.get_by_test_id("tile-moderated")).to_have_text("muted by teacher")
        await expect(tile.get_by_test_id("tile-moderated")).to_be_visible()
    await audio_stays_still(b, alice.id)
    await audio_stays_still(t, alice.id)

    # Her own unmute is refused (this class keeps teacher mutes): shown, the mic stays off.
    await a.by("toggle-mic").click()
    await expect(a.messages).to_contain_text(MUTED_BY_TEACHER)
    await expect(a.by("toggle-mic")).to_have_text("Unmute microphone")
    await expect(a.by("self-tile")).to_have_attribute("data-audio", "off")
    await expect(b.remote_tile(alice.id)).to_have_attribute("data-audio", "off")
    await audio_stays_still(b, alice.id)

    # The teacher allows it: she unmutes and Bob hears her again.
    await alice_tile.get_by_role("button", name="Allow unmute Alice Student", exact=True).click()
    await expect(a.messages).to_contain_text("The teacher lets you unmute your microphone again.")
    await a.by("toggle-mic").click()
    await expect(a.by("toggle-mic")).to_have_text("Mute microphone")
    await expect(b.remote_tile(alice.id)).to_have_attribute("data-audio", "on")
    await expect(b.remote_tile(alice.id).get_by_test_id("tile-moderated")).to_be_hidden()
    await audio_grows(b, alice.id)

    # Mute everyone: both students' microphones go off.
    await t.by("moderate-mute-all").click()
    assert t.sent("MODERATE")[-1] == {"all": True, "action": "mute"}
    for page in (a, b):
        await expect(page.by("toggle-mic")).to_have_text("Unmute microphone")
        await expect(page.by("self-tile")).to_have_attribute("data-audio", "off")
    for user in (alice, bob):
        await expect(t.remote_tile(user.id)).to_have_attribute("data-audio", "off")
    await expect(t.messages.locator('[data-kind="error"]')).to_have_count(0)
    await expect(b.messages.locator('[data-kind="error"]')).to_have_count(0)


async def test_removed_student_leaves_is_refused_until_readmitted_and_camera_stop(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    live = await enrolled_class(api, "Remove lab", "Alice Student", "Bob Student")
    teacher, (alice, bob), class_id = live.teacher, live.students, live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    await join(t, class_id)
    await join(a, class_id)
    await join(b, class_id, camera=True)
    bob_tile = t.remote_tile(bob.id)
    await expect(bob_tile).to_have_attribute("data-video", "on")

    # Stop camera: Bob's page turns it off as his own button does.
    await bob_tile.get_by_role("button", name="Stop camera Bob Student", exact=True).click()
    await expect(b.by("toggle-camera")).to_have_text("Turn camera on")
    await expect(b.by("self-tile")).to_have_attribute("data-video", "off")
    await expect(b.by("self-camera-off")).to_be_visible()
    for page in (t, a):
        await expect(page.remote_tile(bob.id)).to_have_attribute("data-video", "off")

    # Remove: Bob's page leaves the room and says why; the others lose his tile.
    await bob_tile.get_by_role("button", name="Remove Bob Student", exact=True).click()
    await expect(b.by("room")).to_be_hidden()
    await expect(b.by("removed-notice")).to_have_text(f"{REMOVED}.")
    await expect(b.messages).to_contain_text(REMOVED)
    await expect(b.by("join-room")).to_be_visible()
    for page in (t, a):
        await expect(page.remote_tile(bob.id)).to_have_count(0)
    bob_row = t.roster_row(bob.id)
    await expect(bob_row.get_by_test_id("roster-presence")).to_have_text("Not in room")
    await expect(bob_row.get_by_test_id("roster-readmit")).to_be_visible()
    await expect(bob_row.get_by_test_id("roster-remove")).to_be_hidden()

    # Joining again is refused with the server's reason.
    await b.by("join-room").click()
    await expect(b.messages).to_contain_text(f"Could not join the room: {REMOVED}")
    await expect(b.by("room")).to_be_hidden()
    await expect(b.by("join-room")).to_be_enabled()
    assert any(
        data.get("event") == "JOIN_ROOM" and data.get("message") == REMOVED
        for data in b.received("ERROR")
    )

    # Readmitted: Bob's page hears it though he is out of the room, and the join works.
    await bob_row.get_by_role("button", name="Readmit Bob Student", exact=True).click()
    await expect(bob_row.get_by_test_id("roster-remove")).to_be_visible()
    await expect(bob_row.get_by_test_id("roster-readmit")).to_be_hidden()
    await expect(b.by("removed-notice")).to_be_hidden()
    await expect(b.messages).to_contain_text("The teacher readmitted you")
    await b.by("join-room").click()
    await expect(b.by("toggle-hand")).to_be_enabled()
    await expect(b.by("removed-notice")).to_be_hidden()
    for page in (t, a):
        await expect(page.remote_tile(bob.id)).to_have_count(1)
    await expect(bob_row.get_by_test_id("roster-presence")).to_have_text("In room")
    assert [data["action"] for data in b.received("MODERATED")] == [
        "stop_camera",
        "remove",
        "readmit",
    ]
    assert [(data["userId"], data["action"]) for data in a.received("MODERATION")] == [
        (bob.id, "stop_camera"),
        (bob.id, "remove"),
        (bob.id, "readmit"),
    ]

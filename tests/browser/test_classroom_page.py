"""The classroom page in real headless Chromium against a real server process."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import Account, ClassroomApi
from tests.browser.accounts import PASSWORD, email, enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.pages import ClassroomPage
from tests.server_process import ServerProcess

pytestmark = pytest.mark.browser


async def test_sign_up_log_in_and_errors_are_shown(open_page: PageFactory) -> None:
    page = await open_page("newcomer")
    address = email("teacher")
    await page.sign_up("Ada Lovelace", address, PASSWORD, "teacher")
    await expect(page.by("whoami-name")).to_have_text("Ada Lovelace")
    await expect(page.by("whoami-role")).to_have_text("teacher")
    await expect(page.by("classes-empty")).to_be_visible()
    await expect(page.by("create-class-form")).to_be_visible()

    await page.by("logout").click()
    await expect(page.by("auth-section")).to_be_visible()
    await page.log_in(address, "wrong-password")
    await expect(page.messages).to_contain_text("Invalid email or password")
    await expect(page.by("auth-section")).to_be_visible()

    await page.sign_up("Someone Else", address, PASSWORD, "student")
    await expect(page.messages).to_contain_text("Email already exists")

    await page.log_in(address, PASSWORD)
    await expect(page.by("whoami")).to_be_visible()
    await expect(page.by("whoami-name")).to_have_text("Ada Lovelace")
    # The token survives a reload (sessionStorage), so the user stays signed in.
    await page.page.reload()
    await expect(page.by("whoami-name")).to_have_text("Ada Lovelace")


async def test_teacher_runs_a_session_and_student_sees_attendance(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    teacher = await api.register("Grace Hopper", email("teacher"), "teacher", PASSWORD)
    alice = await api.register("Alice Student", email("student"), "student", PASSWORD)
    bob = await api.register("Bob Student", email("student"), "student", PASSWORD)

    teacher_page = await logged_in(open_page, teacher, "teacher")
    t = teacher_page
    await t.page.get_by_label("Class name").fill("Physics 101")
    await t.by("create-class-submit").click()
    await expect(t.by("class-title")).to_have_text("Physics 101")
    class_id = await t.by("class-item").first.get_attribute("data-class-id")
    assert class_id
    for student in (alice, bob):
        await t.page.get_by_label("Student to enrol").select_option(value=student.id)
        await t.by("enrol-submit").click()
        await expect(t.roster_row(student.id)).to_contain_text(student.name)
        await expect(t.messages).to_contain_text(f"Enrolled {student.name}")
    await expect(t.roster_row(alice.id).get_by_test_id("roster-status")).to_have_text("not marked")
    await expect(t.by("session-status")).to_have_attribute("data-state", "none")

    s = await logged_in(open_page, alice, "student")
    await expect(s.class_item(class_id)).to_contain_text("Not live")
    await s.select_class(class_id)
    await expect(s.by("session-status")).to_have_attribute("data-state", "none")
    await expect(s.by("session-status")).to_contain_text("No active session")
    await expect(s.by("join-room")).to_be_disabled()
    await expect(s.by("student-panel")).to_be_visible()
    await expect(s.by("teacher-panel")).to_be_hidden()
    await expect(s.by("my-history")).to_contain_text("No finished session yet")

    await t.by("start-session").click()
    await expect(t.by("session-status")).to_have_attribute("data-state", "live")
    await expect(t.by("end-session")).to_be_enabled()
    # The student's page notices on its own (it re-reads the session state every 2 s).
    await expect(s.by("session-status")).to_have_attribute("data-state", "live")
    await expect(s.class_item(class_id)).to_contain_text("Live now")
    await expect(s.by("join-room")).to_be_enabled()
    await expect(s.by("my-status")).to_have_text("not yet updated")

    await t.roster_row(alice.id).get_by_role("button", name="Mark Alice Student present").click()
    await expect(t.roster_row(alice.id).get_by_test_id("roster-status")).to_have_text("present")
    await expect(s.by("my-status")).to_have_text("present")
    await t.by("today-summary").click()
    await expect(t.by("summary")).to_have_text("Today so far: 1 present, 0 absent, 1 total.")

    await t.screenshot("teacher-live-session")
    await s.screenshot("student-live-session")

    await t.by("end-session").click()
    for page in (t, s):
        await expect(page.by("session-status")).to_have_attribute("data-state", "ended")
        await expect(page.by("session-status")).to_contain_text("Session ended")
    await expect(t.by("summary")).to_have_text("Final: 1 present, 1 absent, 2 total.")
    await expect(t.by("start-session")).to_be_enabled()
    await expect(s.by("join-room")).to_be_disabled()
    await expect(s.by("my-status")).to_have_text("present")
    await expect(s.by("my-history")).to_contain_text("Latest finished session: present")
    await expect(s.class_item(class_id)).to_contain_text("Not live")
    await s.screenshot("student-session-ended")
    await t.screenshot("teacher-session-ended")


@pytest.mark.parametrize("server_env", [{"ROOM_MAX_PARTICIPANTS": "2"}])
async def test_a_refused_join_is_shown_and_the_page_can_try_again(
    api: ClassroomApi, open_page: PageFactory
) -> None:
    # The page reads ERROR by the event it answers: a refused JOIN_ROOM must not leave it
    # "connecting" with the camera open.
    live = await enrolled_class(api, "Small room", "Alice Student", "Bob Student")
    teacher, (alice, bob) = live.teacher, live.students
    class_id = live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    a = await logged_in(open_page, alice, "alice")
    b = await logged_in(open_page, bob, "bob")
    for page in (t, a, b):
        await page.select_class(class_id)
    for page in (t, a):
        await page.by("join-room").click()
        await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")

    await expect(b.by("join-room")).to_be_enabled()
    await b.by("join-room").click()
    await expect(b.messages).to_contain_text(
        "Could not join the room: Room is full (2 participants)"
    )
    await expect(b.by("join-room")).to_be_enabled()
    await expect(b.by("room")).to_be_hidden()
    assert await b.page.evaluate("document.getElementById('self-video').srcObject") is None

    # Once there is room, the same page joins.
    await a.by("leave-room").click()
    await b.by("join-room").click()
    await expect(b.by("self-tile")).to_have_attribute("data-connection", "connected")


# ─────────────────────────── the live room with media ───────────────────────────

# Per remote tile: decoded size, frames decoded so far, media time (see test below).
SAMPLE_VIDEOS = """() => Object.fromEntries(
  [...document.querySelectorAll('[data-testid="remote-tile"]')].map((tile) => {
    const video = tile.querySelector("video");
    const quality = video.getVideoPlaybackQuality();
    return [tile.dataset.userId, {
      width: video.videoWidth, frames: quality.totalVideoFrames, time: video.currentTime,
    }];
  }))"""

PLAYING = """(userIds) => userIds.every((userId) => {
  const tile = document.querySelector(`[data-testid="remote-tile"][data-user-id="${userId}"]`);
  const video = tile && tile.querySelector("video");
  return Boolean(video) && video.videoWidth > 0
    && video.getVideoPlaybackQuality().totalVideoFrames > 2;
})"""


async def test_pages_reconnect_after_the_server_crashes_and_restarts(
    api: ClassroomApi, open_page: PageFactory, server: ServerProcess
) -> None:
    live = await enrolled_class(api, "Chemistry", "Alice Student")
    teacher, (alice,) = live.teacher, live.students
    class_id = live.class_id
    t = await logged_in(open_page, teacher, "teacher")
    s = await logged_in(open_page, alice, "student")
    for page in (t, s):
        await page.select_class(class_id)
    await expect(s.by("my-status")).to_have_text("not yet updated")

    server.kill()  # a crash: sockets drop without a close frame
    for page in (t, s):
        status = page.by("socket-status")
        await expect(status).to_have_attribute("data-state", "reconnecting")
        await expect(status).to_contain_text("reconnecting in")
    await server.start()  # same port, same data directory: the session is still active
    for page in (t, s):
        await expect(page.by("socket-status")).to_have_attribute(
            "data-state", "open", timeout=15_000
        )
        await expect(page.by("session-status")).to_have_attribute("data-state", "live")

    await t.roster_row(alice.id).get_by_role("button", name="Mark Alice Student present").click()
    await expect(s.by("my-status")).to_have_text("present")


async def all_see_each_other_playing(
    pages: dict[str, ClassroomPage], accounts: dict[str, Account]
) -> None:
    """Every page shows a labelled, connected tile per other user, whose video has a size
    and keeps decoding frames with advancing media time."""
    for label, page in pages.items():
        others = [account for other, account in accounts.items() if other != label]
        for account in others:
            tile = page.remote_tile(account.id)
            await expect(tile.get_by_test_id("tile-name")).to_have_text(account.name)
        await page.page.wait_for_function(PLAYING, arg=[a.id for a in others], timeout=10_000)
        for account in others:
            await expect(page.remote_tile(account.id)).to_have_attribute(
                "data-connection", "connected"
            )
        await expect(page.by("remote-tile")).to_have_count(len(others))

    before = {label: await page.page.evaluate(SAMPLE_VIDEOS) for label, page in pages.items()}
    await asyncio.sleep(0.6)
    after = {label: await page.page.evaluate(SAMPLE_VIDEOS) for label, page in pages.items()}
    for label in pages:
        assert set(after[label]) == {a.id for other, a in accounts.items() if other != label}
        for user_id, sample in after[label].items():
            assert sample["width"] > 0, (label, user_id, sample)
            assert sample["frames"] > before[label][user_id]["frames"], (label, user_id)
            assert sample["time"] > before[label][user_id]["time"], (label, user_id)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def test_three_participants_see_each_other_in_the_live_room(
    api: ClassroomApi, open_page: PageFactory, latency_report: list[str]
) -> None:
    live = await enrolled_class(api, "Media lab", "Alice Student", "Bob Student")
    teacher, (alice, bob), class_id = live.teacher, live.students, live.class_id

    accounts = {"teacher": teacher, "alice": alice, "bob": bob}
    pages = dict(
        zip(
            accounts,
            await asyncio.gather(
                *(logged_in(open_page, account, label) for label, account in accounts.items())
            ),
            strict=True,
        )
    )
    await asyncio.gather(*(page.select_class(class_id) for page in pages.values()))

    # Everyone joins, one after the other (the subscribe offers are renegotiated each time).
    for page in pages.values():
        await expect(page.by("join-room")).to_be_enabled()
        await page.by("join-room").click()
        await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")

    await all_see_each_other_playing(pages, accounts)

    # Join click → first remote frame, per (viewer, sender) pair, counted from the later of
    # the two join clicks (epoch ms from each page; all pages share this machine's clock).
    metrics = {
        label: await page.page.evaluate("window.classroomMetrics") for label, page in pages.items()
    }
    latencies = []
    for label, viewer in metrics.items():
        for other, account in accounts.items():
            if other == label:
                continue
            start = max(viewer["joinClickedAt"], metrics[other]["joinClickedAt"])
            latencies.append((viewer["firstFrameAt"][account.id] - start) / 1000)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    latency_report.append(
        f"join click → first remote frame over {len(latencies)} viewer/sender pairs: "
        f"p50 {p50:.3f} s, p95 {p95:.3f} s (target p95 ≤ 1 s: {'met' if p95 <= 1 else 'MISSED'})"
    )
    print(latency_report[-1])
    assert p95 < 5, latencies

    t, a, b = pages["teacher"], pages["alice"], pages["bob"]
    # The teacher's roster shows who is in the room; a manual mark reaches the student.
    await expect(t.roster_row(alice.id).get_by_test_id("roster-presence")).to_have_text("In room")
    # The server's live roster is listed for the teacher.
    await expect(
        t.page.locator(f'[data-testid="live-roster-item"][data-user-id="{alice.id}"]')
    ).to_contain_text("Alice Student")
    await t.roster_row(alice.id).get_by_role("button", name="Mark Alice Student present").click()
    await expect(a.by("my-status")).to_have_text("present")
    await t.screenshot("teacher-in-room")
    await a.screenshot("student-in-room")

    # Alice turns her camera off: the others see it on her tile.
    await a.by("toggle-camera").click()
    await expect(a.by("self-tile")).to_have_attribute("data-video", "off")
    for page in (t, b):
        tile = page.remote_tile(alice.id)
        await expect(tile).to_have_attribute("data-video", "off")
        await expect(tile.get_by_test_id("tile-camera-off")).to_be_visible()
        await expect(tile.get_by_test_id("tile-camera-off")).to_have_text("Camera off")
    await a.by("toggle-camera").click()
    for page in (t, b):
        await expect(page.remote_tile(alice.id)).to_have_attribute("data-video", "on")

    # Alice's connection drops: her page reconnects and rejoins by itself, media flows again.
    joins = await a.page.evaluate("window.classroomMetrics.roomJoins")
    await a.page.evaluate("window.classroom.dropConnection()")
    await a.page.wait_for_function(f"window.classroomMetrics.roomJoins > {joins}")
    await expect(a.by("self-tile")).to_have_attribute("data-connection", "connected")
    await all_see_each_other_playing(pages, accounts)

    # Bob leaves: his tile goes everywhere; he can join again.
    await b.by("leave-room").click()
    for page in (t, a):
        await expect(page.remote_tile(bob.id)).to_have_count(0)
        await expect(page.by("remote-tile")).to_have_count(1)
    await expect(b.by("room")).to_be_hidden()
    await expect(b.by("join-room")).to_be_enabled()
    await expect(t.roster_row(bob.id).get_by_test_id("roster-presence")).to_have_text("Not in room")

    # Nothing went wrong along the way that the pages had to report.
    for page in pages.values():
        await expect(page.messages.locator('[data-kind="error"]')).to_have_count(0)

    # The teacher ends the session: media is torn down and every page says so.
    await t.by("end-session").click()
    for page in pages.values():
        await expect(page.by("session-status")).to_have_attribute("data-state", "ended")
        await expect(page.by("room")).to_be_hidden()
        await expect(page.by("remote-tile")).to_have_count(0)
        await expect(page.by("join-room")).to_be_disabled()
    await expect(a.by("my-status")).to_have_text("present")
    await expect(a.by("my-history")).to_contain_text("Latest finished session: present")

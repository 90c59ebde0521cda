"""The teacher's screen share lands in the recording (real Chromium, three pages on the
real server): the recording has a file of its own for it, tagged as the teacher's screen,
that decodes at the size Chromium captured; the composed video shows that file's pictures
in its main cell while the share lasts. Everything is fetched through the REST API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from scripts.synthpeer.api_client import ClassroomApi
from sfu import compose
from sfu.compose_layout import fit, screen_canvas, screen_layout
from tests.browser.accounts import enrolled_class, logged_in
from tests.browser.conftest import PageFactory
from tests.browser.test_selective_page import SCREEN_FRAMES, join
from tests.recording.inspect import composed_frames, differing_pixels, inspect_file
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

SHARED_FRAMES = 30
"""Screen frames each student's page decodes before the share stops (Chromium's fake
capture sends a few a second)."""
EDGE = 1 / compose.FPS
CAPTURE_SIZE = """() => { const video = document.querySelector('[data-testid="screen-video"]');
  return [video.videoWidth, video.videoHeight]; }"""


async def _download(api: ClassroomApi, path: str, token: str, to: Path) -> Path:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api.base_url}{path}?token={token}") as response,
    ):
        assert response.status == 200, (path, response.status, await response.text())
        await asyncio.to_thread(to.write_bytes, await response.read())
    return to


def _main_cell_checked(output: Path, screen: Path, start: float, end: float) -> int:
    """Check that every composed frame between `start` and `end` (the share's span on the
    recording's timeline) shows the share's latest frame in its main cell, by the share's
    own timestamps from `start` on; returns how many frames were checked."""
    layout = screen_layout(3)
    assert layout.main is not None
    frames = composed_frames(screen)
    latest, upcoming = None, next(frames, None)
    previous = None
    checked = 0
    for at, picture in composed_frames(output):
        assert picture.shape[1::-1] == screen_canvas(3)
        while upcoming is not None and start + upcoming[0] <= at:
            previous, latest, upcoming = latest, upcoming[1], next(frames, None)
        if start + EDGE <= at <= end - EDGE:
            assert latest is not None, at
            main = fit(latest.shape[1], latest.shape[0], layout.main)
            # The compositor places a frame by its own rounding of the same timestamps: at
            # a frame's edge it may show the one before or the one after.
            after = upcoming[1] if upcoming is not None else None
            candidates = [f for f in (latest, previous, after) if f is not None]
            assert min(differing_pixels(picture, main, f) for f in candidates) < 0.01, at
            checked += 1
    return checked


async def test_the_teachers_screen_share_lands_in_the_recording(
    api: ClassroomApi, open_page: PageFactory, tmp_path: Path
) -> None:
    live = await enrolled_class(api, "Recorded slides", "Alice Student", "Bob Student")
    teacher = live.teacher
    t = await logged_in(open_page, teacher, "teacher")
    students = [await logged_in(open_page, s, s.name.split()[0].lower()) for s in live.students]
    for page in (t, *students):
        await page.select_class(live.class_id)
        await join(page)

    await t.by("recording-toggle").click()
    for page in (t, *students):
        await expect(page.by("recording-indicator")).to_be_visible()
    await t.by("toggle-screen").click()
    await expect(t.by("screen-tile")).to_have_attribute("data-playing", "true", timeout=20_000)
    captured = tuple(await t.page.evaluate(CAPTURE_SIZE))
    for page in students:
        await expect(page.by("screen-tile")).to_have_attribute("data-user-id", teacher.id)
        await page.page.wait_for_function(f"({SCREEN_FRAMES})() > {SHARED_FRAMES}", timeout=90_000)
    await t.by("toggle-screen").click()
    for page in students:
        await expect(page.by("screen-tile")).to_be_hidden()
    await t.by("recording-toggle").click()
    for page in (t, *students):
        await expect(page.by("recording-indicator")).to_be_hidden()

    base = f"/class/{live.class_id}/recordings"
    (listed,) = await api.call("GET", base, token=teacher.token)
    path = f"{base}/{listed['recordingId']}"
    detail: dict[str, Any] = {}

    async def composed() -> bool:
        nonlocal detail
        detail = await api.call("GET", path, token=teacher.token)
        return detail["job"]["status"] in ("done", "failed")

    await wait_until(composed, timeout=120)
    assert detail["job"]["status"] == "done", detail["job"]
    (shared,) = [f for f in detail["files"] if f["source"] == "screen"]
    assert (shared["userId"], shared["kind"]) == (teacher.id, "video"), shared
    assert shared["name"].endswith("-screen-1.mkv"), shared
    assert {(f["userId"], f["source"]) for f in detail["files"] if f["kind"] == "video"} == {
        *((user.id, "camera") for user in (teacher, *live.students)),
        (teacher.id, "screen"),
    }

    screen = await _download(
        api, f"{path}/files/{shared['name']}", teacher.token, tmp_path / "screen.mkv"
    )
    report = await asyncio.to_thread(inspect_file, screen, barcode=False)
    assert report.kinds == ["video"] and report.decode_errors == 0, report
    # The recorder was on the share's producer before any student consumed it: it has at
    # least every frame their pages decoded, at the size the teacher's page captured.
    assert report.video_frames >= SHARED_FRAMES, report
    assert report.size == captured and captured[0] > 0 and captured[1] > 0, (report, captured)

    # The composed video: while the share lasts, its main cell shows the share.
    output = await _download(api, f"{path}/composed", teacher.token, tmp_path / "composed.webm")
    start, end = shared["offset"], shared["offset"] + shared["duration"] + 0.2
    checked = await asyncio.to_thread(_main_cell_checked, output, screen, start, end)
    # Frames are checked from `start + EDGE` to `end - EDGE`: at least 90 % of that span.
    assert checked >= 0.9 * (end - start - 2 * EDGE) * compose.FPS, (checked, start, end)

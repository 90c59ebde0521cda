"""Screenshot of a live class in the page, for the README: a teacher and two students in the
room (Chromium's fake camera in every tile) as the teacher sees it, with the roster.

    .venv/bin/python -m scripts.screenshot_classroom [--out docs/images/classroom.png]

Runs its own server on a loopback port with a throw-away SQLite store, signs up three
accounts, and drives three browser contexts of /usr/bin/chromium through Playwright (the
``test`` extra). Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ModuleNotFoundError:  # pragma: no cover - depends on the install
    sys.exit("scripts.screenshot_classroom needs Playwright: pip install 'classroom-sfu[test]'")

from api.app import create_app
from api.config import Settings
from scripts.chromium import CHROMIUM, CHROMIUM_FLAGS
from scripts.synthpeer.api_client import Account, ClassroomApi

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "images" / "classroom.png"
PASSWORD = "secret-pass"
TOKEN_KEY, CLASS_KEY = "classroom.token", "classroom.classId"  # web/js/state.js

# Every remote tile decodes frames (the fake camera's moving picture is on screen).
PLAYING = """(count) => {
  const tiles = [...document.querySelectorAll('[data-testid="remote-tile"]')];
  return tiles.length === count && tiles.every((tile) => {
    const video = tile.querySelector("video");
    return video.videoWidth > 0 && video.getVideoPlaybackQuality().totalVideoFrames > 10;
  });
}"""


@contextlib.asynccontextmanager
async def running_server(data_dir: Path) -> AsyncIterator[str]:
    """The app on a free loopback port, media on loopback only; yields its base URL."""
    settings = Settings(host="127.0.0.1", port=0, data_dir=data_dir, ice_addresses=("127.0.0.1",))
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def take(out: Path, width: int, height: int) -> int:
    with tempfile.TemporaryDirectory(prefix="classroom-shot-") as scratch:
        async with running_server(Path(scratch)) as base_url, ClassroomApi(base_url) as api:
            teacher = await api.register("Grace Hopper", "grace@school.test", "teacher")
            students = [
                await api.register("Alice Moreau", "alice@school.test", "student"),
                await api.register("Bo Lindqvist", "bo@school.test", "student"),
            ]
            cls = await api.create_class(teacher, "Physics 101")
            for student in students:
                await api.enrol(teacher, cls["_id"], student.id)
            await api.start_session(teacher, cls["_id"])

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
                )
                try:
                    pages = []
                    for account in (teacher, *students):
                        pages.append(await open_in_class(browser, base_url, account, cls["_id"]))
                    for page in pages:
                        await page.get_by_test_id("join-room").click()
                        await expect(page.get_by_test_id("self-tile")).to_have_attribute(
                            "data-connection", "connected", timeout=15_000
                        )
                    teacher_page = pages[0]
                    await teacher_page.wait_for_function(PLAYING, arg=2, timeout=15_000)
                    for student in students:
                        row = teacher_page.locator(
                            f'[data-testid="roster-row"][data-student-id="{student.id}"]'
                        )
                        await expect(row.get_by_test_id("roster-status")).to_have_text("present")
                    await teacher_page.set_viewport_size({"width": width, "height": height})
                    out.parent.mkdir(parents=True, exist_ok=True)
                    size = len(await teacher_page.screenshot(path=str(out)))
                finally:
                    await browser.close()
    return size


async def open_in_class(browser: Browser, base_url: str, account: Account, class_id: str) -> Page:
    """A browser context signed in as `account` with the class open (as after a reload)."""
    context = await browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    await context.add_init_script(
        f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(account.token)});"
        f"sessionStorage.setItem({json.dumps(CLASS_KEY)}, {json.dumps(class_id)});"
    )
    page = await context.new_page()
    await page.goto("/")
    await expect(page.get_by_test_id("socket-status")).to_have_attribute("data-state", "open")
    return page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    size = asyncio.run(take(args.out, args.width, args.height))
    print(f"wrote {args.out} ({size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()

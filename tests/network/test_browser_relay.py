"""Chromium with the page's "Relay only" switch, on a network that drops UDP, joins through
coturn and plays the teacher's video."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright, expect

from api.ice_settings import IceSettings
from scripts.coturn_local import LocalCoturn
from tests.browser.pages import CHROMIUM, CHROMIUM_FLAGS, ClassroomPage
from tests.network import netns
from tests.network.conftest import SERVER, ClassroomFactory, Network
from tests.network.test_restrictive_network import decoded_from, wait_for

pytestmark = [
    pytest.mark.network,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
PASSWORD = "secret-pass"  # ClassroomApi.register's default

PLAYING = """(userId) => {
  const tile = document.querySelector(`[data-testid="remote-tile"][data-user-id="${userId}"]`);
  const video = tile && tile.querySelector("video");
  return Boolean(video) && video.videoWidth > 0
    && video.getVideoPlaybackQuality().totalVideoFrames > 2;
}"""

# The selected candidate pair of each of the page's peer connections, from getStats().
SELECTED_PAIRS = """async () => {
  const out = {};
  for (const [name, pc] of Object.entries(window.classroom.state.media.pcs)) {
    if (!pc) continue;
    const stats = [...(await pc.getStats()).values()];
    const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    const pair = transport && stats.find((s) => s.id === transport.selectedCandidatePairId);
    const local = pair && stats.find((s) => s.id === pair.localCandidateId);
    out[name] = local ? { type: local.candidateType, relayProtocol: local.relayProtocol,
                          address: local.address } : null;
  }
  return out;
}"""


BrowserFactory = Callable[[str], Awaitable[Browser]]


@pytest.fixture
async def browser_in_student_namespace(
    network: Network, tmp_path: Path
) -> AsyncIterator[BrowserFactory]:
    """Start Debian Chromium inside the student's namespace for a page at `origin`
    (Playwright talks to it over pipes, so only the page's traffic crosses the firewall).

    The page is plain HTTP on a non-loopback address, which is not a secure context:
    the origin is declared secure so that getUserMedia exists (production serves HTTPS).
    """
    wrapper = tmp_path / "chromium-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(network.student.command(str(CHROMIUM)))} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    browsers: list[Browser] = []
    async with async_playwright() as playwright:

        async def launch(origin: str) -> Browser:
            browser = await playwright.chromium.launch(
                executable_path=str(wrapper),
                headless=True,
                args=[*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
            )
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                await browser.close()


async def test_chromium_relay_only_joins_through_coturn_and_plays_remote_video(
    network: Network,
    coturn: LocalCoturn,
    classroom: ClassroomFactory,
    browser_in_student_namespace: BrowserFactory,
    timings: list[str],
) -> None:
    room = await classroom(
        IceSettings(turn_urls=coturn.config.urls(SERVER), turn_secret=coturn.config.secret)
    )
    netns.allow_only_tcp(network.student, SERVER, [room.port, coturn.config.port])
    teacher = await room.teacher_peer()

    browser = await browser_in_student_namespace(room.base_url)
    page = await ClassroomPage.open(browser, room.base_url, "student")
    try:
        await page.log_in(room.student.email, PASSWORD)
        await expect(page.by("whoami-name")).to_have_text(room.student.name)
        await page.select_class(room.class_id)
        await page.by("relay-only").check()
        await page.page.reload()  # the switch is a device preference: it survives a reload
        await expect(page.by("relay-only")).to_be_checked()
        await page.select_class(room.class_id)
        await expect(page.by("join-room")).to_be_enabled()
        await page.by("join-room").click()

        await page.page.wait_for_function(PLAYING, arg=room.teacher.id, timeout=15_000)
        await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")
        pairs: dict[str, Any] = await page.page.evaluate(SELECTED_PAIRS)
        for name in ("publish", "subscribe"):
            assert pairs[name] is not None, pairs
            assert pairs[name]["type"] == "relay" and pairs[name]["relayProtocol"] == "tcp", pairs
        # The page's camera reaches the teacher too, through the same relay.
        await wait_for(
            lambda: decoded_from(teacher, room.student.id)[0] >= 10,
            what="the teacher decodes the page's camera",
        )
        metrics = await page.page.evaluate("window.classroomMetrics")
        first = (metrics["firstFrameAt"][room.teacher.id] - metrics["joinClickedAt"]) / 1000
        timings.append(
            f"Chromium, UDP dropped, Relay only (TURN over TCP): join click -> first teacher "
            f"frame {first:.3f} s"
        )
        assert page.page_errors == []
    finally:
        await page.close("network-relay-only")

"""Chromium in a network that drops UDP joins through coturn and plays the teacher's video:
with the page's "Relay only" switch over TURN/TCP, and, when only coturn's TLS port is
reachable, over TURN/TLS (``turns:``) once it trusts the CA of coturn's certificate."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.async_api import Browser, async_playwright, expect

from api.ice_settings import IceSettings
from scripts.coturn_local import LocalCoturn
from scripts.synthpeer.peer import SyntheticPeer
from tests.browser.pages import CHROMIUM, CHROMIUM_FLAGS, ClassroomPage
from tests.network import netns
from tests.network.conftest import SERVER, Classroom, ClassroomFactory, Network, TlsCoturn
from tests.network.test_restrictive_network import decoded_from, wait_for

pytestmark = [
    pytest.mark.network,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
PASSWORD = "secret-pass"  # ClassroomApi.register's default
CERTUTIL = shutil.which("certutil")  # Debian libnss3-tools

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

# Runs before the page's scripts: notes the type of every local candidate and every
# connection state of all peer connections the page makes (they are replaced when the page
# rejoins, so the page's own objects cannot tell the whole story afterwards).
RECORD_ICE = """(() => {
  const seen = { candidateTypes: [], connectionStates: [] };
  window.iceSeen = seen;
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("icecandidate", (event) => {
        if (event.candidate && event.candidate.candidate) {
          seen.candidateTypes.push(event.candidate.type);
        }
      });
      this.addEventListener("connectionstatechange", () => {
        seen.connectionStates.push(this.connectionState);
      });
    }
  };
})();"""


class BrowserFactory(Protocol):
    def __call__(self, origin: str, trusted_ca: Path | None = None) -> Awaitable[Browser]: ...


def trust_in_nss(home: Path, ca_file: Path) -> None:
    """Make `home`'s NSS database trust `ca_file` to issue server certificates.

    Chromium on Linux verifies every TLS connection, TURN over TLS included (its sockets
    are the network service's), against its root store plus the roots trusted in the NSS
    database of $HOME/.pki/nssdb."""
    assert CERTUTIL is not None
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    database = f"sql:{nssdb}"
    for command in (
        [CERTUTIL, "-N", "-d", database, "--empty-password"],
        [
            CERTUTIL,
            "-A",
            "-d",
            database,
            "-n",
            "classroom test CA",
            "-t",
            "C,,",
            "-i",
            str(ca_file),
        ],
    ):
        subprocess.run(command, check=True, capture_output=True)


@pytest.fixture
async def browser_in_student_namespace(
    network: Network, tmp_path: Path
) -> AsyncIterator[BrowserFactory]:
    """Start Debian Chromium inside the student's namespace for a page at `origin`
    (Playwright talks to it over pipes, so only the page's traffic crosses the firewall).

    Each browser gets an empty HOME of its own, so no certificate trusted on this machine
    counts; with `trusted_ca` its NSS database there trusts that CA.

    The page is plain HTTP on a non-loopback address, which is not a secure context:
    the origin is declared secure so that getUserMedia exists (production serves HTTPS).
    """
    wrapper = tmp_path / "chromium-in-namespace"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(network.student.command(str(CHROMIUM)))} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    browsers: list[Browser] = []
    async with async_playwright() as playwright:

        async def launch(origin: str, trusted_ca: Path | None = None) -> Browser:
            home = tmp_path / f"chromium-home-{len(browsers)}"
            home.mkdir()
            if trusted_ca is not None:
                trust_in_nss(home, trusted_ca)
            browser = await playwright.chromium.launch(
                executable_path=str(wrapper),
                headless=True,
                args=[*CHROMIUM_FLAGS, f"--unsafely-treat-insecure-origin-as-secure={origin}"],
                env={**os.environ, "HOME": str(home)},
            )
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                await browser.close()


async def enter_class(page: ClassroomPage, room: Classroom) -> None:
    """Log in as the room's student and open its class (its socket open)."""
    await page.log_in(room.student.email, PASSWORD)
    await expect(page.by("whoami-name")).to_have_text(room.student.name)
    await page.select_class(room.class_id)


async def join(page: ClassroomPage) -> None:
    await expect(page.by("join-room")).to_be_enabled()
    await page.by("join-room").click()


async def plays_relayed(
    page: ClassroomPage, room: Classroom, teacher: SyntheticPeer, protocol: str
) -> float:
    """The page plays the teacher's video, both its connections relayed by coturn over
    `protocol`, and the teacher decodes the page's camera; returns join click -> first
    teacher frame in seconds."""
    await page.page.wait_for_function(PLAYING, arg=room.teacher.id, timeout=15_000)
    await expect(page.by("self-tile")).to_have_attribute("data-connection", "connected")
    pairs: dict[str, Any] = await page.page.evaluate(SELECTED_PAIRS)
    for name in ("publish", "subscribe"):
        pair = pairs[name]
        assert pair is not None, pairs
        assert pair["type"] == "relay" and pair["relayProtocol"] == protocol, pairs
        assert pair["address"] == SERVER, pairs  # coturn's relayed address
    # The page's camera reaches the teacher too, through the same relay.
    await wait_for(
        lambda: decoded_from(teacher, room.student.id)[0] >= 10,
        what="the teacher decodes the page's camera",
    )
    metrics = await page.page.evaluate("window.classroomMetrics")
    first: float = (metrics["firstFrameAt"][room.teacher.id] - metrics["joinClickedAt"]) / 1000
    return first


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
        await enter_class(page, room)
        await page.by("relay-only").check()
        await page.page.reload()  # the switch is a device preference: it survives a reload
        await expect(page.by("relay-only")).to_be_checked()
        await page.select_class(room.class_id)
        await join(page)

        first = await plays_relayed(page, room, teacher, "tcp")
        timings.append(
            f"Chromium, UDP dropped, Relay only (TURN over TCP): join click -> first teacher "
            f"frame {first:.3f} s"
        )
        assert page.page_errors == []
    finally:
        await page.close("network-relay-only")


@pytest.mark.skipif(CERTUTIL is None, reason="certutil is not installed (libnss3-tools)")
async def test_chromium_that_may_only_reach_the_tls_port_joins_through_turns(
    network: Network,
    coturn_tls: TlsCoturn,
    classroom: ClassroomFactory,
    browser_in_student_namespace: BrowserFactory,
    timings: list[str],
) -> None:
    turn = coturn_tls.turn
    assert turn.config.tls_port is not None
    # The connect deadline bounds the check that an untrusting Chromium cannot connect.
    room = await classroom(
        IceSettings(
            turn_urls=turn.config.urls(SERVER),
            turn_secret=turn.config.secret,
            connect_timeout_seconds=5,
        )
    )
    # Web port and coturn's TLS port only: coturn's plain TURN port is dropped like all UDP.
    netns.allow_only_tcp(network.student, SERVER, [room.port, turn.config.tls_port])
    teacher = await room.teacher_peer()

    # Without the test CA Chromium refuses coturn's certificate: no relayed candidate, no
    # media connection, and the server's connect deadline fails the join.
    untrusting = await browser_in_student_namespace(room.base_url)
    page = await ClassroomPage.open(untrusting, room.base_url, "untrusting", RECORD_ICE)
    try:
        await enter_class(page, room)
        clicked = time.monotonic()
        await join(page)
        await expect(page.messages).to_contain_text("media connection failed", timeout=15_000)
        failed_after = time.monotonic() - clicked
        seen: dict[str, list[str]] = await page.page.evaluate("window.iceSeen")
        assert "host" in seen["candidateTypes"], seen  # the record works
        assert "relay" not in seen["candidateTypes"], seen
        assert "connected" not in seen["connectionStates"], seen
        assert page.page_errors == []
    finally:
        await page.close("network-turns-untrusting")

    # The same student, Chromium trusting the test CA: relayed over TLS.
    trusting = await browser_in_student_namespace(room.base_url, trusted_ca=coturn_tls.ca_file)
    page = await ClassroomPage.open(trusting, room.base_url, "trusting", RECORD_ICE)
    try:
        await enter_class(page, room)
        await join(page)
        first = await plays_relayed(page, room, teacher, "tls")
        seen = await page.page.evaluate("window.iceSeen")
        assert "relay" in seen["candidateTypes"], seen
        # The page got coturn's turns: URL from the server (ROOM_JOINED's iceServers).
        urls: list[str] = await page.page.evaluate(
            "window.classroom.state.media.iceServers.flatMap((server) => [].concat(server.urls))"
        )
        assert f"turns:{SERVER}:{turn.config.tls_port}?transport=tcp" in urls, urls
        timings.append(
            f"Chromium, UDP dropped, only coturn's TLS port (TURN over TLS): join click -> "
            f"first teacher frame {first:.3f} s; without trusting the CA: 'media connection "
            f"failed' {failed_after:.1f} s after the join click"
        )
        assert page.page_errors == []
    finally:
        await page.close("network-turns-trusting")

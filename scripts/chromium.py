"""The Debian Chromium the browser tests and the page screenshot drive through Playwright."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# See docs/architecture.md: a fake camera and microphone without a prompt, candidates on
# loopback, no mDNS hiding of local addresses; the rest keeps a headless run quiet and off
# the network.
CHROMIUM_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_HOOKS_PAGE = "/static/classroom.html?testHooks=1"
"""The classroom page with its test hooks (``window.classroom``, ``window.classroomMetrics``)."""

"""Helpers for driving the classroom page: one browser context (one user) per page."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    ViewportSize,
)

from tests.server_process import REPO

CHROMIUM = Path("/usr/bin/chromium")
# Fake camera/microphone without a prompt, candidates on loopback, no mDNS
# hiding of local addresses; the rest keeps a headless run quiet and off the network.
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
ARTIFACTS = REPO / "artifacts" / "browser"
TOKEN_PARAM = re.compile(r"token=[^&\s']+")
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class ClassroomPage:
    """The classroom page as one user sees it, in its own browser context."""

    def __init__(self, label: str, context: BrowserContext, page: Page) -> None:
        self.label = label
        self.context = context
        self.page = page
        self.page_errors: list[str] = []
        self.console: list[str] = []
        page.on("pageerror", self._page_error)
        page.on("console", self._console)

    @classmethod
    async def open(
        cls, browser: Browser, base_url: str, label: str, init_script: str | None = None
    ) -> ClassroomPage:
        """`init_script` runs in the page before its own scripts (Playwright's add_init_script)."""
        context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
        if init_script is not None:
            await context.add_init_script(init_script)
        page = await context.new_page()
        self = cls(label, context, page)
        await page.goto("/")
        await self.by("auth-section").wait_for()
        return self

    def _page_error(self, error: Error) -> None:
        self.page_errors.append(f"{error.name}: {error.message}")

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {TOKEN_PARAM.sub('token=…', message.text)}")

    def by(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    @property
    def messages(self) -> Locator:
        return self.by("messages")

    def remote_tile(self, user_id: str) -> Locator:
        return self.page.locator(f'[data-testid="remote-tile"][data-user-id="{user_id}"]')

    def roster_row(self, student_id: str) -> Locator:
        return self.page.locator(f'[data-testid="roster-row"][data-student-id="{student_id}"]')

    def class_item(self, class_id: str) -> Locator:
        return self.page.locator(f'[data-testid="class-item"][data-class-id="{class_id}"]')

    async def sign_up(self, name: str, email: str, password: str, role: str) -> None:
        form = self.by("signup-form")
        await form.get_by_label("Name", exact=True).fill(name)
        await form.get_by_label("Email").fill(email)
        await form.get_by_label("Password (at least 6 characters)").fill(password)
        await form.get_by_label(role.capitalize(), exact=True).check()
        await self.by("signup-submit").click()

    async def log_in(self, email: str, password: str) -> None:
        form = self.by("login-form")
        await form.get_by_label("Email").fill(email)
        await form.get_by_label("Password").fill(password)
        await self.by("login-submit").click()

    async def select_class(self, class_id: str) -> None:
        await self.class_item(class_id).click()
        await self.class_item(class_id).and_(self.page.locator('[aria-current="true"]')).wait_for()
        await self.by("socket-status").and_(self.page.locator('[data-state="open"]')).wait_for()

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def close(self, test_name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log = ARTIFACTS / f"{slug(test_name)}-{slug(self.label)}.console.log"
        log.write_text("\n".join(self.console) + "\n")
        await self.context.close()

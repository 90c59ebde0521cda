"""Helpers for driving the classroom page: one browser context (one user) per page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    ViewportSize,
    WebSocket,
)

from scripts.chromium import CHROMIUM, CHROMIUM_FLAGS, TEST_HOOKS_PAGE
from tests.server_process import REPO

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "ClassroomPage"]

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
        self.frames_sent: list[dict[str, Any]] = []
        self.frames_received: list[dict[str, Any]] = []
        page.on("pageerror", self._page_error)
        page.on("console", self._console)
        page.on("websocket", self._websocket)

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
        await page.goto(TEST_HOOKS_PAGE)
        await self.by("auth-section").wait_for()
        return self

    def _page_error(self, error: Error) -> None:
        self.page_errors.append(f"{error.name}: {error.message}")

    def _console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {TOKEN_PARAM.sub('token=…', message.text)}")

    def _websocket(self, socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: _keep_frame(self.frames_sent, payload))
        socket.on("framereceived", lambda payload: _keep_frame(self.frames_received, payload))

    def sent(self, event: str) -> list[dict[str, Any]]:
        """The data of every `event` frame this page sent on its sockets so far."""
        return [frame["data"] for frame in self.frames_sent if frame.get("event") == event]

    def received(self, event: str) -> list[dict[str, Any]]:
        """The data of every `event` frame this page received on its sockets so far."""
        return [frame["data"] for frame in self.frames_received if frame.get("event") == event]

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


def _keep_frame(frames: list[dict[str, Any]], payload: str | bytes) -> None:
    """Keep a WebSocket frame of the page's protocol ({"event", "data"}); others are not ours."""
    try:
        frame = json.loads(payload)
    except ValueError:
        return
    if isinstance(frame, dict) and isinstance(frame.get("data"), dict):
        frames.append(frame)

"""Fixtures for the browser tests: a real server process, one Chromium, pages per user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from scripts.synthpeer.api_client import ClassroomApi
from tests.browser.pages import CHROMIUM, CHROMIUM_FLAGS, ClassroomPage
from tests.server_process import ServerProcess

PageFactory = Callable[[str], Awaitable[ClassroomPage]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is not installed (apt-get install chromium)")
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(skip)


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the server; a test overrides it with
    ``@pytest.mark.parametrize("server_env", [{...}])``."""
    return {}


@pytest.fixture
async def server(tmp_path: Path, server_env: dict[str, str]) -> AsyncIterator[ServerProcess]:
    """The real server (``python -m api``) on SQLite in tmp, gathering ICE on loopback."""
    process = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "ICE_ADDRESSES": "127.0.0.1", **server_env},
        tmp_path / "server.log",
    )
    try:
        await process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[ClassroomApi]:
    """REST client for setting things up quickly where the UI flow is not under test."""
    async with ClassroomApi(server.base_url) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """One headless Debian Chromium per test; every user gets a context of their own."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def open_page(
    browser: Browser, server: ServerProcess, request: pytest.FixtureRequest
) -> AsyncIterator[PageFactory]:
    """Open the classroom page for a user (``await open_page("teacher")``); at the end every
    page must have had no uncaught script error, and its console is kept under artifacts/."""
    pages: list[ClassroomPage] = []

    async def open_one(label: str) -> ClassroomPage:
        page = await ClassroomPage.open(browser, server.base_url, label)
        pages.append(page)
        return page

    yield open_one
    errors = [f"{page.label}: {error}" for page in pages for error in page.page_errors]
    for page in pages:
        await page.close(request.node.name)
    assert not errors, "uncaught errors in the page:\n" + "\n".join(errors)


_LATENCY_LINES: list[str] = []


@pytest.fixture
def latency_report() -> list[str]:
    """Lines appended here are repeated in the terminal summary of the run."""
    return _LATENCY_LINES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LATENCY_LINES:
        terminalreporter.section("classroom page: media timings")
        for line in _LATENCY_LINES:
            terminalreporter.write_line(line)

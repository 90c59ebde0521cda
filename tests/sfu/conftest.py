"""Fixtures of the media-plane tests: an in-process room on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from scripts.support.loopback import Room


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    """A router with no participants yet; closed (with its clients) after the test."""
    room = Room()
    try:
        yield room
    finally:
        await room.close()

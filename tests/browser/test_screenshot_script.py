"""scripts/screenshot_classroom.py regenerates the README's picture of a live class."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from scripts.screenshot_classroom import take

pytestmark = pytest.mark.browser


async def test_the_screenshot_of_a_live_class_is_a_small_png_of_the_asked_size(
    tmp_path: Path,
) -> None:
    out = tmp_path / "images" / "classroom.png"
    size = await take(out, 1280, 900)
    data = out.read_bytes()
    assert size == len(data) < 300 * 1024
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)

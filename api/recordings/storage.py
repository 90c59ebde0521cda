"""Disk usage of the recordings directory."""

from __future__ import annotations

import os
from pathlib import Path


def directory_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (0 if it does not exist); blocking."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total

"""What the project's console scripts (``classroom-sfu``, ``classroom-loadtest``) share."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

DISTRIBUTION = "classroom-sfu"


def distribution_version() -> str:
    """The installed distribution's version (pyproject.toml's, once installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2), like a configuration error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

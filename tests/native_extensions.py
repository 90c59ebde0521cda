"""Tests of the optional C extensions: skipped where one is not built (failed on CI,
which builds both), and skipped when ``SFU_NATIVE=0`` runs the suite on the Python
paths on purpose."""

from __future__ import annotations

import os

import pytest

from sfu.native_choice import ENVIRONMENT_VARIABLE, native_allowed


def require_extension(available: bool, module: str) -> None:
    """Skip the calling test unless extension `module` (e.g. ``sfu._receive``) is
    `available`."""
    if available:
        return
    if not native_allowed():
        pytest.skip(f"{ENVIRONMENT_VARIABLE}=0: the Python paths are under test")
    reason = (
        f"{module} is not built: run `.venv/bin/python -m pip install -e .` "
        "with gcc and the Python headers (python3-dev) installed"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)

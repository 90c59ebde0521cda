"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scripts.support.nx27017 import Nx27017Server, running_nx27017


@pytest.fixture(scope="session")
def nx27017_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nx27017Server]:
    """One nx-27017 server (MongoDB wire protocol) for the whole run; tests use their own
    database names in it."""
    with running_nx27017(tmp_path_factory.mktemp("nx-27017")) as server:
        yield server

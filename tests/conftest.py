"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from api import overload
from api.auth import passwords
from scripts.support.nx27017 import Nx27017Server, running_nx27017

TEST_PASSWORD_COST = 14
"""scrypt's log2 N for the accounts tests make (~60 ms a hash instead of ~0.5 s at the
default 17: the suite makes thousands); tests/api/test_passwords.py checks the default."""


@pytest.fixture(autouse=True, scope="session")
def no_shedding_in_process() -> Iterator[None]:
    """A server made in this process shares its event loop with the test's own clients
    (aiortc peers encoding and decoding): that loop's lag says nothing about the server,
    so such servers do not shed joins unless a test sets `overload_lag_ms`. Child servers
    keep the default (tests/api/test_overload.py tests shedding)."""
    default, overload.DEFAULT_LAG_LIMIT_MS = overload.DEFAULT_LAG_LIMIT_MS, 0
    try:
        yield
    finally:
        overload.DEFAULT_LAG_LIMIT_MS = default


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashes() -> Iterator[None]:
    """Servers made in this process (Settings without a cost) and child servers (their
    environment) hash new passwords at `TEST_PASSWORD_COST`."""
    default, passwords.DEFAULT_COST = passwords.DEFAULT_COST, TEST_PASSWORD_COST
    environment = os.environ.get("PASSWORD_HASH_COST")
    os.environ["PASSWORD_HASH_COST"] = str(TEST_PASSWORD_COST)
    try:
        yield
    finally:
        passwords.DEFAULT_COST = default
        if environment is None:
            del os.environ["PASSWORD_HASH_COST"]
        else:
            os.environ["PASSWORD_HASH_COST"] = environment


@pytest.fixture(scope="session")
def nx27017_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nx27017Server]:
    """One nx-27017 server (MongoDB wire protocol) for the whole run; tests use their own
    database names in it."""
    with running_nx27017(tmp_path_factory.mktemp("nx-27017")) as server:
        yield server

"""Password hashes: OWASP's scrypt parameters by default, hashes of older costs still
verify and are re-hashed at the current cost by the login that verifies them (real server,
both stores), and a stored value that would cost too much to check does not verify."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from api.auth.passwords import PasswordHasher, PasswordWork
from api.config import ConfigError, Settings, load_settings

from .conftest import RunningServer, ServerFactory


def test_the_default_is_owasps_scrypt_and_it_verifies() -> None:
    hasher = PasswordHasher()  # tests lower passwords.DEFAULT_COST for the servers they make
    assert hasher.cost == 17
    stored = hasher.hash("correct horse")
    assert stored.startswith("scrypt$131072$8$1$")  # N = 2**17, r = 8, p = 1
    assert hasher.verify("correct horse", stored) and not hasher.verify("wrong", stored)
    assert hasher.is_current(stored)


def test_older_costs_verify_but_are_not_current_and_bad_values_never_verify() -> None:
    old, new = PasswordHasher(11), PasswordHasher(12)
    stored = old.hash("pw")
    assert new.verify("pw", stored) and not new.is_current(stored) and old.is_current(stored)
    for bad in ("", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$AA==$AA==", stored[:-8] + "!!"):
        assert not new.verify("pw", bad)
    # A stored N of 2**30 would take 128 GiB and minutes: refused without trying.
    started = time.monotonic()
    assert not new.verify("pw", "scrypt$1073741824$8$1$" + stored.split("$", 4)[4])
    assert time.monotonic() - started < 1.0
    with pytest.raises(ValueError):
        PasswordHasher(9)


def test_the_cost_is_a_setting() -> None:
    assert load_settings({"PASSWORD_HASH_COST": "15"}).password_hash_cost == 15
    assert load_settings({}).password_hash_cost is None  # the default, 17
    with pytest.raises(ConfigError, match="PASSWORD_HASH_COST"):
        load_settings({"PASSWORD_HASH_COST": "9"})


async def test_no_more_hashes_run_at_once_than_allowed() -> None:
    work = PasswordWork(PasswordHasher(12), parallel=2)
    running = peak = 0
    original = work.hasher.hash

    def counting(password: str) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return original(password)
        finally:
            running -= 1

    work.hasher.hash = counting  # type: ignore[method-assign]
    hashes = await asyncio.gather(*(work.hash(f"pw{i}") for i in range(6)))
    assert peak == 2 and len(set(hashes)) == 6
    assert await work.check("pw3", hashes[3]) and not await work.check("pw3", None)


@pytest.fixture
async def stronger(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(replace(settings, password_hash_cost=13))


async def test_a_login_rehashes_an_older_hash_at_the_current_cost(stronger: RunningServer) -> None:
    store = stronger.services.store
    user = await store.create_user(
        name="Old",
        email="old@school.test",
        role="student",
        password_hash=PasswordHasher(11).hash("secret1"),
    )
    login = {"email": "old@school.test", "password": "secret1"}
    assert "token" in await stronger.api.call("POST", "/auth/login", body=login)
    rehashed = await store.get_user(user.id)
    assert rehashed is not None and rehashed.password_hash is not None
    assert rehashed.password_hash.startswith("scrypt$8192$8$1$")
    # The new hash is the same password, and a current hash is left as it is.
    assert "token" in await stronger.api.call("POST", "/auth/login", body=login)
    again = await store.get_user(user.id)
    assert again is not None and again.password_hash == rehashed.password_hash
    wrong = {**login, "password": "secret2"}
    status, answer = await stronger.api.request("POST", "/auth/login", body=wrong)
    assert (status, answer["error"]) == (400, "Invalid email or password")
    assert await store.set_password_hash("0" * 24, "x") is False

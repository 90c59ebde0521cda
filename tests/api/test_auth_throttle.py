"""Sign-up and login throttling: the arithmetic on a fake clock, then over real HTTP from
two loopback addresses (127.0.0.1 and 127.0.0.2), 429 with ``Retry-After``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from unittest.mock import PropertyMock, patch

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from api import rate_limits
from api.auth.throttle import TOO_MANY_ATTEMPTS, AuthThrottle
from api.config import ConfigError, Settings, ThrottleSettings, load_settings
from api.rate_limits import TOO_MANY_REQUESTS, Buckets, RateLimited
from api.routes.auth_routes import client_address

from .conftest import RunningServer, ServerFactory

A, B = "198.51.100.1", "198.51.100.2"
BAD_LOGIN = "Invalid email or password"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused_for(action: Any) -> int:
    with pytest.raises(RateLimited) as refused:
        action()
    assert refused.value.message == TOO_MANY_ATTEMPTS and refused.value.status == 429
    return refused.value.retry_after


def test_an_address_gets_its_burst_then_its_rate() -> None:
    clock = Clock()
    limits = AuthThrottle(ThrottleSettings(signup_burst=3, signups_per_minute=6), clock)
    for _ in range(3):
        limits.check_signup(A)
    assert refused_for(lambda: limits.check_signup(A)) == 10  # one every 10 s
    limits.check_signup(B)  # another address has its own bucket
    clock.now += 10
    limits.check_signup(A)
    assert refused_for(lambda: limits.check_signup(A)) == 10


def test_failed_logins_double_the_wait_for_that_account_from_that_address_only() -> None:
    clock = Clock()
    limits = AuthThrottle(ThrottleSettings(free_failures=2, max_failure_delay=8), clock)
    waits = []
    for _ in range(7):
        limits.check_login(A, "ada@school.test")
        limits.login_failed(A, "ada@school.test")
        try:
            limits.check_login(A, "ada@school.test")
        except RateLimited as refused:
            waits.append(refused.retry_after)
            clock.now += refused.retry_after
        else:
            waits.append(0)
    assert waits == [0, 0, 1, 2, 4, 8, 8]  # two free, then doubling up to the cap
    # The real user at another address, and another account at this one, are not delayed.
    limits.check_login(B, "ada@school.test")
    limits.check_login(A, "bea@school.test")
    limits.login_failed(A, "ada@school.test")
    assert refused_for(lambda: limits.check_login(A, "ada@school.test")) == 8
    clock.now += 8
    limits.check_login(A, "ada@school.test")
    limits.login_succeeded(A, "ada@school.test")  # a success forgives the failures
    limits.login_failed(A, "ada@school.test")
    limits.check_login(A, "ada@school.test")


def test_disabled_limits_refuse_nothing_and_idle_entries_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    off = AuthThrottle(ThrottleSettings(enabled=False, signup_burst=1, free_failures=1))
    for _ in range(10):
        off.check_signup(A)
        off.check_login(A, "x@y.z")
        off.login_failed(A, "x@y.z")
    clock = Clock()
    monkeypatch.setattr(rate_limits, "MAX_TRACKED", 3)
    limits = AuthThrottle(ThrottleSettings(signup_burst=1, signups_per_minute=1), clock)
    for i in range(5):  # at most MAX_TRACKED addresses are remembered, the oldest go
        limits.check_signup(f"203.0.113.{i}")
    limits.check_signup("203.0.113.0")  # forgotten, so a full bucket again
    assert refused_for(lambda: limits.check_signup("203.0.113.4")) == 60
    clock.now += 2 * 3600  # idle longer than anything is remembered
    limits.check_signup("203.0.113.9")
    assert refused_for(lambda: limits.check_signup("203.0.113.9")) == 60


def test_the_limits_are_settings() -> None:
    settings = load_settings({"AUTH_THROTTLE": "false", "AUTH_LOGIN_BURST": "7"})
    assert settings.auth_throttle.enabled is False and settings.auth_throttle.login_burst == 7
    assert load_settings({}).auth_throttle == ThrottleSettings()


@pytest.fixture
async def throttled(start_server: ServerFactory, settings: Settings) -> RunningServer:
    limits = ThrottleSettings(signup_burst=2, signups_per_minute=1, login_burst=50, free_failures=2)
    return await start_server(replace(settings, auth_throttle=limits))


@pytest.fixture
async def from_second_address() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def _post(
    session: aiohttp.ClientSession, server: RunningServer, path: str, body: dict[str, str]
) -> tuple[int, str, str | None]:
    async with session.post(server.api.base_url + path, json=body) as response:
        answer = await response.json()
        return response.status, answer.get("error", ""), response.headers.get("Retry-After")


def _signup(number: int) -> dict[str, str]:
    return {
        "name": f"S{number}",
        "email": f"s{number}@school.test",
        "password": "secret1",
        "role": "student",
    }


async def test_sign_ups_and_guesses_over_http_get_429_with_retry_after(
    throttled: RunningServer, from_second_address: aiohttp.ClientSession
) -> None:
    async with aiohttp.ClientSession() as first:
        assert (await _post(first, throttled, "/auth/signup", _signup(1)))[0] == 201
        assert (await _post(first, throttled, "/auth/signup", _signup(2)))[0] == 201
        assert await _post(first, throttled, "/auth/signup", _signup(3)) == (
            429,
            TOO_MANY_ATTEMPTS,
            "60",
        )
        # Another address signs up; nothing was stored for the refused one.
        assert (await _post(from_second_address, throttled, "/auth/signup", _signup(3)))[0] == 201

        wrong = {"email": "s1@school.test", "password": "guess"}
        for _ in range(2):
            assert (await _post(first, throttled, "/auth/login", wrong))[:2] == (400, BAD_LOGIN)
        assert (await _post(first, throttled, "/auth/login", wrong))[:2] == (400, BAD_LOGIN)
        status, error, retry = await _post(first, throttled, "/auth/login", wrong)
        assert (status, error, retry) == (429, TOO_MANY_ATTEMPTS, "1")
        # The account's owner, elsewhere, logs in at once.
        right = {**wrong, "password": "secret1"}
        status, _, _ = await _post(from_second_address, throttled, "/auth/login", right)
        assert status == 200
        await asyncio.sleep(1.05)
        assert (await _post(first, throttled, "/auth/login", right))[0] == 200


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", [], "203.0.113.9"),  # no proxy: the peer
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),  # a client's own header: ignored
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),  # through the trusted proxy
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),  # a forged first hop
        ("127.0.0.1", ["6.6.6.6", "198.51.100.7, 10.0.0.2"], "198.51.100.7"),  # two proxies
        ("127.0.0.1", ["not an address"], "127.0.0.1"),
        ("127.0.0.1", [], "127.0.0.1"),
    ],
)
def test_the_client_address_is_taken_from_trusted_proxies_only(
    peer: str, forwarded: list[str], expected: str
) -> None:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    request = make_mocked_request("POST", "/auth/login", headers=headers)
    trusted = frozenset({"127.0.0.1", "10.0.0.2"})
    with patch.object(type(request), "remote", new_callable=PropertyMock, return_value=peer):
        assert client_address(request, trusted) == expected


def test_trusted_proxies_are_a_setting_of_addresses() -> None:
    settings = load_settings({"TRUSTED_PROXIES": "127.0.0.1, ::1"})
    assert settings.trusted_proxies == frozenset({"127.0.0.1", "::1"})
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings({"TRUSTED_PROXIES": "proxy.local"})


async def test_a_session_csv_is_rate_limited_per_account(
    start_server: ServerFactory, settings: Settings
) -> None:
    server = await start_server(replace(settings, heavy_routes_burst=2, heavy_routes_per_minute=6))
    room = await server.classroom(students=1)
    session = await server.api.start_session(room.teacher, room.class_id)
    await server.api.call(
        "POST", "/attendance/end", token=room.teacher.token, body={"classId": room.class_id}
    )
    path = f"/class/{room.class_id}/sessions/{session['sessionId']}/attendance.csv"
    headers = {"Authorization": f"Bearer {room.teacher.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(2):
            async with http.get(server.api.base_url + path) as response:
                assert response.status == 200 and response.content_type == "text/csv"
        async with http.get(server.api.base_url + path) as response:
            assert response.status == 429 and response.headers["Retry-After"] == "10"
            assert await response.json() == {"success": False, "error": TOO_MANY_REQUESTS}
    # Another teacher's budget is their own.
    other = await server.classroom(students=1)
    theirs = await server.api.start_session(other.teacher, other.class_id)
    body = {"classId": other.class_id}
    await server.api.call("POST", "/attendance/end", token=other.teacher.token, body=body)
    their_path = f"/class/{other.class_id}/sessions/{theirs['sessionId']}/attendance.csv"
    their_headers = {"Authorization": f"Bearer {other.teacher.token}"}
    async with (
        aiohttp.ClientSession(headers=their_headers) as http,
        http.get(server.api.base_url + their_path) as response,
    ):
        assert response.status == 200


def test_buckets_forget_idle_keys_and_say_when_to_retry() -> None:
    clock = Clock()
    buckets: Buckets[str] = Buckets(2, 30, forget_after=60, clock=clock)
    buckets.spend("a")
    buckets.spend("a")
    with pytest.raises(RateLimited) as refused:
        buckets.spend("a", "custom")
    assert (refused.value.retry_after, refused.value.message) == (2, "custom")
    clock.now += 3600
    buckets.spend("b")
    assert len(buckets) == 1  # "a", idle for an hour, was forgotten

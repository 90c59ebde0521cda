"""Auth0 mode: tokens verified against a tenant JWKS (served here by the test itself)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from api.config import Settings

from .conftest import RunningServer, ServerFactory

DOMAIN = "tenant.example.auth0.test"
AUDIENCE = "https://liveclassroom.api"
NAMESPACE = "https://liveclassroom.app"


@dataclass
class Tenant:
    """A stand-in Auth0 tenant: signing keys and the JWKS endpoint that publishes them."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    fetches: int = 0

    def add_key(self, kid: str, publish: bool = True) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": f"https://{DOMAIN}/",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 600,
            "sub": "auth0|teacher-1",
            f"{NAMESPACE}/role": "teacher",
            "email": "grace@school.test",
            "name": "Grace",
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
async def tenant() -> AsyncIterator[tuple[Tenant, str]]:
    state = Tenant()
    state.add_key("k1")

    async def jwks(request: web.Request) -> web.Response:
        state.fetches += 1
        return web.json_response(state.jwks())

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield state, str(server.make_url("/.well-known/jwks.json"))
    await server.close()


@pytest.fixture
async def auth0_server(
    start_server: ServerFactory, settings: Settings, tenant: tuple[Tenant, str]
) -> RunningServer:
    return await start_server(
        replace(
            settings,
            auth0_domain=DOMAIN,
            auth0_audience=AUDIENCE,
            auth0_namespace=NAMESPACE,
            auth0_jwks_url=tenant[1],
        )
    )


async def test_a_tenant_token_provisions_the_user_on_first_sight(
    auth0_server: RunningServer, tenant: tuple[Tenant, str]
) -> None:
    state, _ = tenant
    token = state.token()
    first = await auth0_server.api.call("GET", "/auth/me", token=token)
    assert (first["name"], first["email"], first["role"]) == (
        "Grace",
        "grace@school.test",
        "teacher",
    )
    again = await auth0_server.api.call("GET", "/auth/me", token=token)
    assert again == first and len(first["_id"]) == 24


async def test_provisioned_users_use_the_whole_api(
    auth0_server: RunningServer, tenant: tuple[Tenant, str]
) -> None:
    state, _ = tenant
    teacher = state.token()
    student = state.token(
        sub="auth0|student-1",
        email="sam@school.test",
        name="Sam",
        **{f"{NAMESPACE}/role": "student"},
    )
    sam = await auth0_server.api.call("GET", "/auth/me", token=student)
    cls = await auth0_server.api.call("POST", "/class", token=teacher, body={"className": "Art"})
    enrolled = await auth0_server.api.call(
        "POST", f"/class/{cls['_id']}/add-student", token=teacher, body={"studentId": sam["_id"]}
    )
    assert enrolled["studentIds"] == [sam["_id"]]
    ws = await auth0_server.api.open_socket(student)
    assert await ws.quiet(0.2) == []
    await ws.close()


async def test_a_student_provisioned_on_first_sight_is_pushed_to_teachers(
    auth0_server: RunningServer, tenant: tuple[Tenant, str]
) -> None:
    state, _ = tenant
    teacher = await auth0_server.api.open_socket(state.token())
    student = state.token(
        sub="auth0|student-2",
        email="kim@school.test",
        name="Kim",
        **{f"{NAMESPACE}/role": "student"},
    )
    kim = await auth0_server.api.call("GET", "/auth/me", token=student)
    pushed = await teacher.next("STUDENT_SIGNED_UP")
    assert pushed == {"student": {"_id": kim["_id"], "name": "Kim", "email": "kim@school.test"}}
    await auth0_server.api.call("GET", "/auth/me", token=student)  # known now: no news
    await teacher.send("NO_SUCH_EVENT")
    await teacher.next("ERROR")
    assert [f for f in teacher.received if f["event"] == "STUDENT_SIGNED_UP"] == []
    await teacher.close()


async def test_bad_tenant_tokens_are_refused(
    auth0_server: RunningServer, tenant: tuple[Tenant, str]
) -> None:
    state, _ = tenant
    state.add_key("unpublished", publish=False)
    now = int(time.time())
    for name, token in {
        "wrong-audience": state.token(aud="https://other.api"),
        "wrong-issuer": state.token(iss="https://evil.auth0.test/"),
        "expired": state.token(iat=now - 7200, exp=now - 3600),
        "unknown-key": state.token(kid="unpublished"),
        "no-role": state.token(sub="auth0|nobody", **{f"{NAMESPACE}/role": "admin"}),
        "hs256": jwt.encode(
            {"sub": "auth0|x", "iss": f"https://{DOMAIN}/", "aud": AUDIENCE},
            "an-hmac-secret-long-enough-for-sha256!",
            algorithm="HS256",
            headers={"kid": "k1"},
        ),
    }.items():
        status, answer = await auth0_server.api.request("GET", "/auth/me", token=token)
        assert (status, answer["error"]) == (401, "Unauthorized, token missing or invalid"), name


async def test_a_rotated_key_is_fetched_on_its_first_unknown_kid(
    start_server: ServerFactory, settings: Settings, tenant: tuple[Tenant, str]
) -> None:
    state, url = tenant
    server = await start_server(
        replace(
            settings,
            auth0_domain=DOMAIN,
            auth0_audience=AUDIENCE,
            auth0_namespace=NAMESPACE,
            auth0_jwks_url=url,
            auth0_jwks_min_refresh_seconds=0,
        )
    )
    await server.api.call("GET", "/auth/me", token=state.token())
    assert state.fetches == 1
    await server.api.call("GET", "/auth/me", token=state.token())
    assert state.fetches == 1  # cached
    state.add_key("k2")
    await server.api.call("GET", "/auth/me", token=state.token(kid="k2"))
    assert state.fetches == 2


async def test_unknown_kids_do_not_hammer_the_tenant(
    auth0_server: RunningServer, tenant: tuple[Tenant, str]
) -> None:
    state, _ = tenant
    state.add_key("unpublished", publish=False)
    await auth0_server.api.call("GET", "/auth/me", token=state.token())
    for _ in range(5):
        status, _answer = await auth0_server.api.request(
            "GET", "/auth/me", token=state.token(kid="unpublished")
        )
        assert status == 401
    assert state.fetches == 1


async def test_local_signup_and_login_are_disabled_in_auth0_mode(
    auth0_server: RunningServer,
) -> None:
    status, answer = await auth0_server.api.request(
        "POST",
        "/auth/signup",
        body={"name": "A", "email": "a@b.test", "password": "secret1", "role": "student"},
    )
    assert (status, answer["error"]) == (400, "Local accounts are disabled; sign in with Auth0")

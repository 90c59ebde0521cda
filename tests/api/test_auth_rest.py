"""``/auth`` routes and local RS256 tokens, over real HTTP. Forged, expired and otherwise
bad tokens on every route are the token matrix, `test_token_matrix.py`."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import RunningServer

SIGNUP = {"name": "Ada", "email": "ada@school.test", "password": "secret1", "role": "teacher"}


async def test_signup_returns_the_account_without_any_password_field(server: RunningServer) -> None:
    status, body = await server.api.request("POST", "/auth/signup", body=SIGNUP)
    assert status == 201 and body["success"] is True
    data = body["data"]
    assert set(data) == {"_id", "name", "email", "role"}
    assert len(data["_id"]) == 24 and int(data["_id"], 16) >= 0
    assert (data["name"], data["email"], data["role"]) == ("Ada", "ada@school.test", "teacher")


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in SIGNUP.items() if k != "name"},
        {k: v for k, v in SIGNUP.items() if k != "email"},
        {k: v for k, v in SIGNUP.items() if k != "password"},
        {k: v for k, v in SIGNUP.items() if k != "role"},
        {**SIGNUP, "email": "not-an-email"},
        {**SIGNUP, "password": "12345"},
        {**SIGNUP, "role": "admin"},
        {**SIGNUP, "name": 42},
        {**SIGNUP, "password": 123456},
        [SIGNUP],
        "plain text",
    ],
    ids=[
        "no-name",
        "no-email",
        "no-password",
        "no-role",
        "bad-email",
        "short-password",
        "bad-role",
        "name-not-string",
        "password-not-string",
        "array",
        "not-json",
    ],
)
async def test_signup_with_an_invalid_body_is_refused_as_invalid_schema(
    server: RunningServer, body: Any
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    status, answer = await server.api.request("POST", "/auth/signup", body=raw)
    assert (status, answer) == (400, {"success": False, "error": "Invalid request schema"})


async def test_a_duplicate_email_is_refused_whatever_its_case(server: RunningServer) -> None:
    await server.api.request("POST", "/auth/signup", body=SIGNUP)
    again = {**SIGNUP, "email": "ADA@School.test", "role": "student"}
    status, answer = await server.api.request("POST", "/auth/signup", body=again)
    assert (status, answer) == (400, {"success": False, "error": "Email already exists"})


async def test_login_returns_a_token_that_auth_me_accepts(server: RunningServer) -> None:
    await server.api.request("POST", "/auth/signup", body=SIGNUP)
    status, body = await server.api.request(
        "POST", "/auth/login", body={"email": SIGNUP["email"], "password": SIGNUP["password"]}
    )
    assert status == 200 and set(body["data"]) == {"token"}
    token = body["data"]["token"]
    for header in (token, f"Bearer {token}"):
        async with server.api._session.get(
            server.api.base_url + "/auth/me", headers={"Authorization": header}
        ) as response:
            me = await response.json()
        assert response.status == 200
        assert me["data"]["email"] == "ada@school.test" and me["data"]["role"] == "teacher"


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "ada@school.test", "password": "wrong-password"},
        {"email": "nobody@school.test", "password": "secret1"},
    ],
    ids=["wrong-password", "unknown-email"],
)
async def test_login_with_wrong_credentials_is_refused(
    server: RunningServer, credentials: dict[str, str]
) -> None:
    await server.api.request("POST", "/auth/signup", body=SIGNUP)
    status, answer = await server.api.request("POST", "/auth/login", body=credentials)
    assert (status, answer) == (400, {"success": False, "error": "Invalid email or password"})


async def test_login_with_a_malformed_body_is_invalid_schema(server: RunningServer) -> None:
    status, answer = await server.api.request("POST", "/auth/login", body={"email": "x"})
    assert (status, answer["error"]) == (400, "Invalid request schema")


async def _token_claims(server: RunningServer) -> tuple[str, dict[str, Any]]:
    await server.api.request("POST", "/auth/signup", body=SIGNUP)
    token = await server.api.login(SIGNUP["email"], SIGNUP["password"])
    return token, jwt.decode(token, options={"verify_signature": False})


async def test_tokens_carry_the_documented_claims_and_verify_against_the_jwks(
    server: RunningServer,
) -> None:
    token, claims = await _token_claims(server)
    assert set(claims) >= {"sub", "role", "iss", "aud", "iat", "exp"}
    assert claims["role"] == "teacher" and claims["exp"] > claims["iat"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    jwks = await server.api._session.get(server.api.base_url + "/.well-known/jwks.json")
    keys = (await jwks.json())["keys"]
    key = next(k for k in keys if k["kid"] == header["kid"])
    public = jwt.algorithms.RSAAlgorithm.from_jwk(key)
    assert isinstance(public, rsa.RSAPublicKey)
    assert (
        jwt.decode(token, public, algorithms=["RS256"], audience=claims["aud"])["sub"]
        == claims["sub"]
    )


async def _me_status(server: RunningServer, token: str | None) -> tuple[int, dict[str, Any]]:
    return await server.api.request("GET", "/auth/me", token=token)


async def test_the_signing_key_is_kept_across_restarts(start_server: Any, settings: Any) -> None:
    first = await start_server(settings)
    await first.api.request("POST", "/auth/signup", body=SIGNUP)
    token = await first.api.login(SIGNUP["email"], SIGNUP["password"])
    second = await start_server(settings)
    assert (await _me_status(second, token))[0] == 200

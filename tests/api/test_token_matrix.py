"""The token matrix: every user-facing REST route and the class WebSocket, with every kind
of bad credential (each must get ``401 Unauthorized, token missing or invalid``, and the
socket ``ERROR Unauthorized or invalid token`` then its close) and every wrong identity
(a student on teacher routes, a teacher on student routes, the teacher of another class, a
student not enrolled, ...: the documented ``403``), over real HTTP and real WebSockets.
One test id per case; never a 2xx, never a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.errors import (
    NOT_CLASS_TEACHER,
    NOT_ENROLLED,
    STUDENT_ONLY,
    TEACHER_ONLY,
    UNAUTHORIZED,
    WS_STUDENT_EVENT_ONLY,
    WS_TEACHER_EVENT_ONLY,
    WS_UNAUTHORIZED,
)
from api.ids import new_id
from api.recordings.service import NOT_SHARED

from .conftest import RunningServer
from .test_recordings_access import _stored_recording

ANY, TEACHER, MEMBER, OWNER, ENROLLED, READER = (
    "signed in",
    "teacher",
    "member",
    "owner",
    "enrolled",
    "reader",
)


@dataclass(frozen=True)
class Route:
    """One REST route with a body that would pass validation, and who may call it."""

    method: str
    path: str
    who: str
    body: dict[str, str | float] | None = None
    download: bool = False
    """Takes the token from ``?token=`` too (a ``<video src>`` cannot send headers)."""


ROUTES = [
    Route("GET", "/auth/me", ANY),
    Route("GET", "/classes", ANY),
    Route("GET", "/ice-servers", ANY),
    Route("GET", "/students", TEACHER),
    Route("POST", "/class", TEACHER, {"className": "Maths"}),
    Route("GET", "/class/{cls}", MEMBER),
    Route("GET", "/class/{cls}/room", MEMBER),
    Route("POST", "/class/{cls}/add-student", OWNER, {"studentId": "{student}"}),
    Route("PUT", "/class/{cls}/settings", OWNER, {"presentRatio": 0.5}),
    Route("POST", "/attendance/start", OWNER, {"classId": "{cls}"}),
    Route("POST", "/attendance/end", OWNER, {"classId": "{cls}"}),
    Route("GET", "/class/{cls}/my-attendance", ENROLLED),
    Route("GET", "/class/{cls}/my-history", ENROLLED),
    Route("GET", "/class/{cls}/sessions", OWNER),
    Route("GET", "/class/{cls}/sessions/{session}", OWNER),
    Route("GET", "/class/{cls}/sessions/{session}/attendance.csv", OWNER),
    Route("POST", "/class/{cls}/recordings/start", OWNER),
    Route("POST", "/class/{cls}/recordings/stop", OWNER),
    Route("GET", "/class/{cls}/recordings", READER),
    Route("GET", "/class/{cls}/recordings/{rec}", READER),
    Route("GET", "/class/{cls}/recordings/{rec}/files/t-video-1.mkv", READER, download=True),
    Route("GET", "/class/{cls}/recordings/{rec}/composed", READER, download=True),
    Route("DELETE", "/class/{cls}/recordings/{rec}", OWNER),
]
TEACHER_EVENTS = [
    "TODAY_SUMMARY",
    "DONE",
    "ROSTER",
    "ATTENDANCE_MARKED",
    "RECORDING_START",
    "RECORDING_STOP",
]


@dataclass
class World:
    """A class with its teacher, an enrolled student, an active session and a stored
    recording; the teacher of another class and a student enrolled nowhere."""

    server: RunningServer
    ids: dict[str, str]
    tokens: dict[str, str]
    claims: dict[str, Any]
    """The enrolled student's real claims, to forge variants of."""

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        key = self.server.services.signing_key
        return jwt.encode(
            claims, key.private_key, algorithm="RS256", headers={"kid": kid or key.kid}
        )

    def changed(self, **changes: Any) -> str:
        """The student's claims with `changes` (None removes a claim), signed with the
        server's own key."""
        claims = {k: v for k, v in {**self.claims, **changes}.items() if v is not None}
        return self.sign(claims)


@dataclass(frozen=True)
class TokenCase:
    """How to build the ``Authorization`` value, and what each route and the socket must
    answer to it."""

    name: str
    header: Callable[[World], str | None]
    refused: Callable[[Route], tuple[int, str] | None]
    """The documented refusal for a route, or None where this token may call it."""
    ws_events: list[str] | None = None
    """Events the socket (opened with ``classId``) must refuse with `ws_refusal`; None:
    the token itself is refused at connect."""
    ws_refusal: str = ""
    query: bool = False
    """The token goes in ``?token=`` instead of the header."""


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _segments(token: str) -> list[str]:
    return token.split(".")


def _tampered(world: World) -> str:
    """The student's header and signature around claims that say the teacher."""
    header, _, signature = _segments(world.tokens["student"])
    claims = {**world.claims, "sub": world.ids["teacher"], "role": "teacher"}
    return f"Bearer {header}.{_b64(claims)}.{signature}"


def _alg_none(world: World) -> str:
    kid = world.server.services.signing_key.kid
    return f"Bearer {_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(world.claims)}."


def _hs256_with_public_key(world: World) -> str:
    """Algorithm confusion: HMAC keyed with the server's public key, which anyone has."""
    key = world.server.services.signing_key
    secret = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_b64(world.claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"Bearer {signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _other_key(world: World) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = world.server.services.signing_key.kid
    return "Bearer " + jwt.encode(world.claims, stranger, algorithm="RS256", headers={"kid": kid})


def _unauthorized(route: Route) -> tuple[int, str]:
    return 401, UNAUTHORIZED


def _in_query(route: Route) -> tuple[int, str] | None:
    return None if route.download else (401, UNAUTHORIZED)


def _as_student(route: Route) -> tuple[int, str] | None:
    """The enrolled student, in a class that does not share its recordings."""
    return {
        TEACHER: (403, TEACHER_ONLY),
        OWNER: (403, TEACHER_ONLY),
        READER: (403, NOT_SHARED),
    }.get(route.who)


def _as_teacher(route: Route) -> tuple[int, str] | None:
    return (403, STUDENT_ONLY) if route.who == ENROLLED else None


def _as_other_teacher(route: Route) -> tuple[int, str] | None:
    if route.who == ENROLLED:
        return 403, STUDENT_ONLY
    return (403, NOT_CLASS_TEACHER) if route.who in (MEMBER, OWNER, READER) else None


def _as_outsider(route: Route) -> tuple[int, str] | None:
    return {
        TEACHER: (403, TEACHER_ONLY),
        OWNER: (403, TEACHER_ONLY),
        MEMBER: (403, NOT_CLASS_TEACHER),
        ENROLLED: (403, NOT_ENROLLED),
        READER: (403, NOT_ENROLLED),
    }.get(route.who)


def _bearer(role: str) -> Callable[[World], str]:
    return lambda world: f"Bearer {world.tokens[role]}"


def _signed(**changes: Any) -> Callable[[World], str]:
    return lambda world: "Bearer " + world.changed(**changes)


def _later(seconds: int) -> int:
    return int(time.time()) + seconds


CASES = [
    TokenCase("no-token", lambda world: None, _unauthorized),
    TokenCase("empty-bearer", lambda world: "Bearer ", _unauthorized),
    TokenCase("basic-scheme", lambda world: "Basic dGVhY2hlcjpzZWNyZXQ=", _unauthorized),
    TokenCase("malformed", lambda world: "Bearer not.a.token", _unauthorized),
    TokenCase("wrong-signature", _other_key, _unauthorized),
    TokenCase("tampered-claims", _tampered, _unauthorized),
    TokenCase("alg-none", _alg_none, _unauthorized),
    TokenCase("hs256-with-the-public-key", _hs256_with_public_key, _unauthorized),
    TokenCase(
        "unknown-kid",
        lambda world: "Bearer " + world.sign(world.claims, kid="someone-elses-key"),
        _unauthorized,
    ),
    TokenCase("expired", _signed(iat=_later(-7200), exp=_later(-3600)), _unauthorized),
    TokenCase("not-yet-valid", _signed(nbf=_later(3600)), _unauthorized),
    TokenCase("wrong-audience", _signed(aud="another-service"), _unauthorized),
    TokenCase("wrong-issuer", _signed(iss="https://evil.example/"), _unauthorized),
    TokenCase("no-expiry", _signed(exp=None), _unauthorized),
    TokenCase("deleted-or-unknown-user", _signed(sub=new_id()), _unauthorized),
    TokenCase("subject-not-an-id", _signed(sub="admin"), _unauthorized),
    TokenCase("subject-not-a-string", _signed(sub=12345), _unauthorized),
    TokenCase(
        # A local token naming an account that signs in with Auth0 (provisioned while the
        # server ran in Auth0 mode): only Auth0's tokens may speak for it.
        "local-token-of-an-auth0-account",
        lambda world: "Bearer " + world.changed(sub=world.ids["auth0_user"]),
        _unauthorized,
    ),
    TokenCase(
        "valid-token-in-query-not-header",
        _bearer("teacher"),
        _in_query,
        ws_events=["TODAY_SUMMARY"],
        query=True,
    ),
    TokenCase(
        "enrolled-student-on-teacher-routes",
        _bearer("student"),
        _as_student,
        ws_events=TEACHER_EVENTS,
        ws_refusal=WS_TEACHER_EVENT_ONLY,
    ),
    TokenCase(
        "teacher-on-student-routes",
        _bearer("teacher"),
        _as_teacher,
        ws_events=["MY_ATTENDANCE"],
        ws_refusal=WS_STUDENT_EVENT_ONLY,
    ),
    TokenCase(
        "teacher-of-another-class",
        _bearer("other_teacher"),
        _as_other_teacher,
        ws_events=["JOIN_ROOM", *TEACHER_EVENTS],
        ws_refusal=NOT_CLASS_TEACHER,
    ),
    TokenCase(
        "student-not-enrolled",
        _bearer("outsider"),
        _as_outsider,
        ws_events=["JOIN_ROOM", "MY_ATTENDANCE"],
        ws_refusal=NOT_ENROLLED,
    ),
    TokenCase(
        # Signed with the server's own key, as if it had leaked: the role comes from the
        # store, not from the claim.
        "student-with-a-teacher-role-claim",
        _signed(role="teacher"),
        _as_student,
        ws_events=TEACHER_EVENTS,
        ws_refusal=WS_TEACHER_EVENT_ONLY,
    ),
]


@pytest.fixture
async def world(server: RunningServer) -> World:
    room = await server.classroom(students=1)
    student = room.students[0]
    other_teacher = await server.account("teacher")
    await server.api.create_class(other_teacher, "Chemistry")
    outsider = await server.account("student")
    auth0_user = await server.services.store.create_user(
        name="Auth0 teacher",
        email="auth0-teacher@school.test",
        role="teacher",
        external_id="auth0|teacher",
    )
    session = await server.api.start_session(room.teacher, room.class_id)
    recording = await _stored_recording(server, room.class_id, room.teacher.id)
    return World(
        server,
        {
            "cls": room.class_id,
            "student": student.id,
            "teacher": room.teacher.id,
            "session": session["sessionId"],
            "rec": recording.id,
            "auth0_user": auth0_user.id,
        },
        {
            "teacher": room.teacher.token,
            "student": student.token,
            "other_teacher": other_teacher.token,
            "outsider": outsider.token,
        },
        jwt.decode(student.token, options={"verify_signature": False}),
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class Answer:
    """What one route answered."""

    status: int
    envelope: dict[str, Any] | None = field(default=None)


async def _call(http: aiohttp.ClientSession, world: World, route: Route, case: TokenCase) -> Answer:
    path = route.path.format(**world.ids)
    body = route.body and {
        k: v.format(**world.ids) if isinstance(v, str) else v for k, v in route.body.items()
    }
    value = case.header(world)
    headers, params = {}, {}
    if case.query and value is not None:
        params["token"] = value.removeprefix("Bearer ")
    elif value is not None:
        headers["Authorization"] = value
    url = world.server.api.base_url + path
    async with http.request(
        route.method, url, headers=headers, params=params, json=body
    ) as response:
        if response.content_type != "application/json":
            return Answer(response.status)
        return Answer(response.status, await response.json())


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_every_route_answers_the_documented_refusal(
    world: World, http: aiohttp.ClientSession, case: TokenCase
) -> None:
    wrong = {}
    for route in ROUTES:
        answer = await _call(http, world, route, case)
        assert answer.status < 500, (route.path, answer)
        refusal = case.refused(route)
        if refusal is None:
            assert answer.status not in (401, 403), (route.path, answer)
            continue
        expected = {"success": False, "error": refusal[1]}
        if (answer.status, answer.envelope) != (refusal[0], expected):
            wrong[f"{route.method} {route.path}"] = (answer.status, answer.envelope)
    assert not wrong
    await _check_socket(http, world, case)


async def _check_socket(http: aiohttp.ClientSession, world: World, case: TokenCase) -> None:
    value = case.header(world)
    url = world.server.api.base_url + "/ws"
    params = {"classId": world.ids["cls"]}
    ways: list[tuple[dict[str, str], dict[str, str]]] = []
    if case.query or case.ws_events is None:
        token = (value or "").removeprefix("Bearer ")
        ways.append(({**params, "token": token} if token else params, {}))
    if not case.query and value is not None:
        ways.append((params, {"Authorization": value}))
    for query, headers in ways:
        async with http.ws_connect(url, params=query, headers=headers) as ws:
            if case.ws_events is None:
                message = await ws.receive_json(timeout=10)
                assert message == {
                    "event": "ERROR",
                    "data": {"message": WS_UNAUTHORIZED, "event": None},
                }
                closing = await ws.receive(timeout=10)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                continue
            for event in case.ws_events:
                data = (
                    {"studentId": world.ids["student"], "status": "present"}
                    if event == "ATTENDANCE_MARKED"
                    else {}
                )
                await ws.send_json({"event": event, "data": data})
                reply = await ws.receive_json(timeout=10)
                if case.ws_refusal:
                    assert reply == {
                        "event": "ERROR",
                        "data": {"message": case.ws_refusal, "event": event},
                    }
                else:  # a valid token where the protocol takes it: the event is answered
                    assert reply["event"] == event, reply

"""Every error a client sees is one mapped message with the right status (``api.media_errors``
for the media plane's), never an exception class name or aiortc's text; every WebSocket
``ERROR`` says which event it answers (``{message, event}``)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.config import Settings
from api.errors import INTERNAL_ERROR, WS_INVALID_FORMAT, WS_UNAUTHORIZED, WS_UNKNOWN_EVENT
from api.media_errors import (
    ICE_CANDIDATE,
    INVALID_CANDIDATE,
    MEDIA_CLOSED,
    NOT_NOW,
    PUBLISH_OFFER,
    SUBSCRIBE_ANSWER,
    media_error,
)
from api.rooms.room import MEDIA_FAILED
from api.ws.connection import EventSocket
from api.ws.events import EVENTS
from scripts.synthpeer.api_client import ApiFailure, ClassroomApi, ClassSocket
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack
from sfu import (
    AdapterError,
    Closed,
    InvalidCandidate,
    InvalidSdp,
    InvalidState,
    MediaConfig,
    SfuError,
)

from .conftest import Classroom, RunningServer, ServerFactory

# What the media plane's own text may look like: an aiortc class name and its message.
LEAKY = "InvalidStateError: RTCPeerConnection is closed (aiortc internals)"
CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]*)+\b|\w+Error\b")
"""A CamelCase word (``InvalidSdp``, ``AdapterError``) or any ``...Error``."""

MEDIA_ERRORS: dict[str, tuple[type[SfuError], int, str]] = {
    "invalid-sdp": (InvalidSdp, 400, "Invalid SDP: session description could not be applied"),
    "invalid-candidate": (InvalidCandidate, 400, INVALID_CANDIDATE),
    "invalid-state": (InvalidState, 409, NOT_NOW),
    "closed": (Closed, 409, MEDIA_CLOSED),
    "adapter": (AdapterError, 500, INTERNAL_ERROR),
    "other": (SfuError, 500, INTERNAL_ERROR),
}


def assert_no_class_name(message: str) -> None:
    assert CLASS_NAME.search(message) is None, message
    assert "aiortc" not in message, message


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite only; a 1 s connect deadline so a peer that vanishes is reported promptly."""
    base = Settings(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", ice_addresses=("127.0.0.1",)
    )
    return replace(base, ice=replace(base.ice, connect_timeout_seconds=1.0))


@pytest.fixture
async def server(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(settings)


@pytest.fixture
async def media() -> AsyncIterator[Callable[[], MediaClient]]:
    """Real aiortc publish clients (audio only), closed at the end."""
    made: list[MediaClient] = []

    def make() -> MediaClient:
        client = MediaClient(MediaConfig(host_addresses=("127.0.0.1",)), audio=ToneAudioTrack())
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def joined_socket(server: RunningServer) -> tuple[Classroom, ClassSocket]:
    """The teacher of a live class, in its room, nobody else there."""
    room = await server.classroom(students=1)
    await server.api.start_session(room.teacher, room.class_id)
    socket = await server.api.open_socket(room.teacher.token)
    await socket.request("JOIN_ROOM", {}, "ROOM_JOINED")
    return room, socket


async def error_for(socket: ClassSocket, event: str, data: dict[str, Any]) -> dict[str, Any]:
    await socket.send(event, data)
    return await socket.error_for(event)


# -- the mapping itself ------------------------------------------------------------------


def test_every_media_plane_error_maps_to_one_status_and_a_clean_message() -> None:
    for error_class, status, message in MEDIA_ERRORS.values():
        mapped = media_error(error_class(LEAKY))
        assert (mapped.status, mapped.message) == (status, message)
        assert_no_class_name(mapped.message)
    for operation in (PUBLISH_OFFER, SUBSCRIBE_ANSWER, ICE_CANDIDATE):
        sdp = media_error(InvalidSdp(LEAKY), operation)
        assert sdp.status == 400
        assert sdp.message == f"Invalid SDP: {operation.subject} could not be applied"
        state = media_error(InvalidState(LEAKY), operation)
        assert (state.status, state.message) == (409, operation.out_of_turn)
        assert media_error(Closed(LEAKY), operation).message == MEDIA_CLOSED
        assert media_error(InvalidCandidate(LEAKY), operation).message == INVALID_CANDIDATE
        assert media_error(AdapterError(LEAKY), operation).message == INTERNAL_ERROR
        for message in (operation.out_of_turn, sdp.message):
            assert_no_class_name(message)
    # What sfu wrote about the client's own input follows; its log message does not.
    reason = "offer m-section 1 (video) offers VP9; the server forwards VP8, H264 only"
    explained = media_error(InvalidSdp(LEAKY, reason=reason), PUBLISH_OFFER)
    assert explained.message == f"Invalid SDP: publish offer could not be applied: {reason}"
    candidate = media_error(InvalidCandidate.about_input("malformed candidate"), ICE_CANDIDATE)
    assert candidate.message == f"{INVALID_CANDIDATE}: malformed candidate"
    for message in (explained.message, candidate.message):
        assert LEAKY not in message


# -- over HTTP ---------------------------------------------------------------------------


async def test_media_plane_errors_reach_http_clients_with_their_status(
    settings: Settings,
) -> None:
    async def fail(request: web.Request) -> web.Response:
        # The media plane failing inside a request; no route of ours can be made to.
        error_class = MEDIA_ERRORS[request.match_info["kind"]][0]
        raise error_class(LEAKY)

    app = create_app(settings)
    app.router.add_get("/test/media-failure/{kind}", fail)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    api = ClassroomApi(str(test_server.make_url("/")))
    try:
        for kind, (_, status, message) in MEDIA_ERRORS.items():
            answer = await api.request("GET", f"/test/media-failure/{kind}")
            assert answer == (status, {"success": False, "error": message}), kind
            assert_no_class_name(message)
        async with api._session.get(api.base_url + "/metrics") as response:
            exposition = await response.text()
    finally:
        await api.close()
        await test_server.close()
    # Counted by the error clients were given, not by the media plane's class.
    for kind, count in (("InvalidRequest", 2), ("Conflict", 2), ("InternalError", 2)):
        assert f'classroom_errors_total{{channel="http",type="{kind}"}} {count}.0' in exposition


# -- over the WebSocket ------------------------------------------------------------------


async def test_a_bad_publish_offer_says_what_was_wrong(server: RunningServer) -> None:
    _, socket = await joined_socket(server)
    no_ice = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
        "a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
    )
    because = {
        "garbage": "SDP must start with a v= line",
        "v=0 but not SDP": "SDP cannot be parsed",
        no_ice: "offer m-section 0 (audio) has no ICE username fragment or password",
        # applied, it would only fail at the connect deadline, with nothing to say why
        "v=0\r\n": "the offer has no audio or video m-section",
    }
    for sdp, reason in because.items():
        error = await error_for(
            socket, "WEBRTC_OFFER", {"pc": "publish", "offer": {"type": "offer", "sdp": sdp}}
        )
        assert error == {
            "message": f"Invalid SDP: publish offer could not be applied: {reason}",
            "event": "WEBRTC_OFFER",
        }
    await socket.close()


async def test_an_answer_nobody_asked_for_is_a_state_conflict(server: RunningServer) -> None:
    _, socket = await joined_socket(server)
    error = await error_for(
        socket, "WEBRTC_ANSWER", {"pc": "subscribe", "answer": {"type": "answer", "sdp": "v=0"}}
    )
    assert error == {
        "message": "Unexpected subscribe answer: no subscribe offer is outstanding",
        "event": "WEBRTC_ANSWER",
    }
    with pytest.raises(ApiFailure) as failure:  # the synthetic client sees it the same way
        await socket.request(
            "WEBRTC_ANSWER", {"pc": "subscribe", "answer": {"type": "answer", "sdp": "v=0"}}, "X"
        )
    assert failure.value.event == "WEBRTC_ANSWER"
    assert failure.value.error == SUBSCRIBE_ANSWER.out_of_turn
    await socket.close()


async def test_ice_candidates_before_and_after_negotiation(
    server: RunningServer, media: Callable[[], MediaClient]
) -> None:
    _, socket = await joined_socket(server)
    candidate = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
    early = await error_for(
        socket, "WEBRTC_ICE_CANDIDATE", {"pc": "publish", "candidate": candidate}
    )
    assert early == {"message": ICE_CANDIDATE.out_of_turn, "event": "WEBRTC_ICE_CANDIDATE"}

    client = media()
    offer = await client.publish_offer()
    answer = await socket.request(
        "WEBRTC_OFFER", {"pc": "publish", "offer": {"type": "offer", "sdp": offer}}, "WEBRTC_ANSWER"
    )
    assert answer["pc"] == "publish"
    bogus = {"candidate": "candidate:bogus", "sdpMid": "0"}
    error = await error_for(socket, "WEBRTC_ICE_CANDIDATE", {"pc": "publish", "candidate": bogus})
    assert error == {
        "message": f"{INVALID_CANDIDATE}: malformed candidate",
        "event": "WEBRTC_ICE_CANDIDATE",
    }
    await socket.close()


async def test_media_failure_reported_by_the_room_answers_no_event(
    server: RunningServer, media: Callable[[], MediaClient]
) -> None:
    _, socket = await joined_socket(server)
    client = media()
    offer = await client.publish_offer()
    await socket.request(
        "WEBRTC_OFFER", {"pc": "publish", "offer": {"type": "offer", "sdp": offer}}, "WEBRTC_ANSWER"
    )
    await client.close()  # the peer vanishes before connecting; the 1 s deadline expires
    error = await socket.next("ERROR", timeout=15)
    assert error == {"message": MEDIA_FAILED, "event": None}
    await socket.close()


async def test_undecodable_frames_answer_no_event_and_the_rest_name_theirs(
    server: RunningServer,
) -> None:
    room = await server.classroom(students=1)
    socket = await server.api.open_socket(room.teacher.token)
    for raw in ("not json", "[1,2]", '{"data": {}}', '{"event": 5}', "null"):
        await socket.send_raw(raw)
        assert await socket.next("ERROR") == {"message": WS_INVALID_FORMAT, "event": None}, raw
    await socket.ws.send_bytes(b"\x00\x01")
    assert await socket.next("ERROR") == {"message": WS_INVALID_FORMAT, "event": None}
    await socket.send_raw('{"event": "JOIN_ROOM", "data": [1]}')
    assert await socket.next("ERROR") == {"message": WS_INVALID_FORMAT, "event": "JOIN_ROOM"}
    await socket.send_raw(json.dumps({"event": "NO_SUCH_EVENT", "data": {}}))
    assert await socket.next("ERROR") == {"message": WS_UNKNOWN_EVENT, "event": "NO_SUCH_EVENT"}
    assert await error_for(socket, "DONE", {}) == {
        "message": "No active attendance session",
        "event": "DONE",
    }
    await socket.close()

    refused = await server.api.open_socket("not a token")
    assert await refused.next("ERROR") == {"message": WS_UNAUTHORIZED, "event": None}
    await refused.close()


async def test_every_media_plane_error_reaches_the_socket_mapped(
    start_server: ServerFactory, settings: Settings
) -> None:
    """Errors no client action can provoke (a closed participant racing an event, aiortc
    internals changing) go through the same router mapping as the real handlers'."""
    raised: list[type[Exception]] = []

    async def fail(socket: EventSocket, data: dict[str, Any]) -> None:
        kind = data["kind"]
        error_class: type[Exception] = RuntimeError if kind == "bug" else MEDIA_ERRORS[kind][0]
        raised.append(error_class)
        raise error_class(LEAKY)

    running = await start_server(settings)
    running.app[EVENTS].add("TEST_MEDIA_FAILURE", fail, media=PUBLISH_OFFER)
    room = await running.classroom(students=0)
    socket = await running.api.open_socket(room.teacher.token)
    expected = {
        "invalid-sdp": "Invalid SDP: publish offer could not be applied",
        "invalid-candidate": INVALID_CANDIDATE,
        "invalid-state": PUBLISH_OFFER.out_of_turn,
        "closed": MEDIA_CLOSED,
        "adapter": INTERNAL_ERROR,
        "other": INTERNAL_ERROR,
        "bug": INTERNAL_ERROR,
    }
    for kind, message in expected.items():
        error = await error_for(socket, "TEST_MEDIA_FAILURE", {"kind": kind})
        assert error == {"message": message, "event": "TEST_MEDIA_FAILURE"}, kind
        assert_no_class_name(error["message"])
    assert len(raised) == len(expected)
    await socket.close()

"""A student whose network drops every UDP datagram joins through coturn over TCP, and
without a TURN server is told clearly that media cannot connect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from api.ice_settings import IceSettings
from api.services import SERVICES
from scripts.coturn_local import LocalCoturn
from scripts.synthpeer.peer import SyntheticPeer
from sfu.aiortc_adapter import testing as adapter_testing
from tests.network import netns
from tests.network.conftest import (
    SERVER,
    Classroom,
    ClassroomFactory,
    Network,
    StudentFactory,
    StudentProcess,
    TlsCoturn,
)

pytestmark = pytest.mark.network
MEDIA_FAILED = "Media connection failed; join the room again to retry"


async def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not in time: {what}")
        await asyncio.sleep(0.05)


def decoded_from(peer: SyntheticPeer, user_id: str) -> tuple[int, int, int]:
    """(video frames decoded, audio samples decoded, video decode errors) from `user_id`."""
    assert peer.media is not None
    video = audio = errors = 0
    for stream in peer.media.streams_of(user_id):
        if (sink := stream.sinks.get("video")) is not None:
            video, errors = video + sink.decoded, errors + sink.decode_errors
        if (sink := stream.sinks.get("audio")) is not None:
            audio += sink.samples_decoded
    return video, audio, errors


async def join_through_turn(
    room: Classroom,
    network: Network,
    student_process: StudentFactory,
    turn_port: int,
    transport: str,
) -> tuple[StudentProcess, dict[str, Any]]:
    """The student joins from a namespace that drops all UDP and reaches only the web port
    and `turn_port`, relaying over `transport`; media must decode both ways."""
    netns.allow_only_tcp(network.student, SERVER, [room.port, turn_port])
    teacher = await room.teacher_peer()
    student = await student_process(room, turnTransports=[transport], connectTimeout=15)
    result = await student.result(timeout=30)

    assert result["connected"], result
    assert result["videoDecoded"] >= 15 and result["audioSamples"] > 0, result
    assert result["decodeErrors"] == 0
    for name in ("publish", "subscribe"):
        pair = result["pairs"][name]
        assert pair["local_type"] == "relay" and pair["relay_transport"] == transport, pair
        assert pair["local_address"][0] == SERVER  # coturn's relayed address
    # The teacher decodes the student's camera and microphone, relayed the other way.
    await wait_for(
        lambda: (
            decoded_from(teacher, room.student.id)[0] >= 15
            and decoded_from(teacher, room.student.id)[1] > 0
        ),
        what="the teacher decodes the student's media",
    )
    assert decoded_from(teacher, room.student.id)[2] == 0
    return student, result


async def test_a_student_whose_network_drops_udp_joins_through_turn_over_tcp(
    network: Network,
    coturn: LocalCoturn,
    classroom: ClassroomFactory,
    student_process: StudentFactory,
    timings: list[str],
) -> None:
    room = await classroom(
        IceSettings(turn_urls=coturn.config.urls(SERVER), turn_secret=coturn.config.secret)
    )
    student, result = await join_through_turn(
        room, network, student_process, coturn.config.port, "tcp"
    )
    # The server sees the student's relayed candidate on both of its connections.
    live = room.app[SERVICES].rooms.rooms[0]
    member = live.members[room.student.id]
    for pc in (member.participant.publish_pc, member.participant.subscribe_pc):
        assert pc is not None
        pair = adapter_testing.selected_pair(pc)
        assert pair is not None and pair.remote_type == "relay", pair
    timings.append(
        f"aiortc student, UDP dropped, TURN over TCP: JOIN_ROOM -> first teacher frame "
        f"{result['joinToFirstFrame']:.3f} s"
    )
    await student.finish()


async def test_a_student_who_may_only_reach_the_tls_port_joins_through_turns(
    network: Network,
    coturn_tls: TlsCoturn,
    classroom: ClassroomFactory,
    student_process: StudentFactory,
    timings: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    turn = coturn_tls.turn
    assert turn.config.tls_port is not None
    # The student process verifies coturn's certificate against the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(coturn_tls.ca_file))
    room = await classroom(
        IceSettings(turn_urls=turn.config.urls(SERVER), turn_secret=turn.config.secret)
    )
    issued = await room.api.call("GET", "/ice-servers", token=room.student.token)
    assert any(url.startswith("turns:") for s in issued["iceServers"] for url in s["urls"])
    student, result = await join_through_turn(
        room, network, student_process, turn.config.tls_port, "tls"
    )
    timings.append(
        f"aiortc student, UDP dropped, TURN over TLS: JOIN_ROOM -> first teacher frame "
        f"{result['joinToFirstFrame']:.3f} s"
    )
    await student.finish()


async def test_without_turn_the_same_student_is_told_media_failed(
    network: Network,
    classroom: ClassroomFactory,
    student_process: StudentFactory,
    timings: list[str],
) -> None:
    room = await classroom(IceSettings(connect_timeout_seconds=5))
    netns.allow_only_tcp(network.student, SERVER, [room.port])
    await room.teacher_peer()

    student = await student_process(room, connectTimeout=20)
    result = await student.result(timeout=30)

    assert result == {"connected": False, "error": MEDIA_FAILED, "elapsed": result["elapsed"]}
    # The server's connect deadline (5 s) answered, not a hang or aioice's ~1 min.
    assert 4 < result["elapsed"] < 10, result
    timings.append(
        f"aiortc student, UDP dropped, no TURN: ERROR '{result['error']}' "
        f"{result['elapsed']:.1f} s after starting to join"
    )
    await student.finish()

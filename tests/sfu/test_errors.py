"""Bad input raises a clear error from sfu.errors and never harms the room."""

from __future__ import annotations

import pytest

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.client import MediaClient
from sfu import Closed, InvalidCandidate, InvalidSdp, InvalidState, ParticipantId

GARBAGE = [
    "",
    "hello",
    "v=0\r\nm=video notaport UDP/TLS/RTP/SAVPF 96\r\n",
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
    "a=rtpmap:0 PCMU/8000\r\n",
]


async def _valid_offer() -> str:
    client = MediaClient(LOOPBACK, video=Room().clip)
    try:
        return await client.publish_offer()
    finally:
        await client.close()


@pytest.mark.parametrize("sdp", GARBAGE)
async def test_a_malformed_publish_offer_raises_invalid_sdp(room: Room, sdp: str) -> None:
    participant = room.router.add_participant(ParticipantId("bad"))
    with pytest.raises(InvalidSdp):
        await participant.publish(sdp)
    assert participant.publish_pc is None


async def test_an_offer_without_ice_credentials_or_forwardable_codec_names_the_problem(
    room: Room,
) -> None:
    participant = room.router.add_participant(ParticipantId("bad"))
    offer = await _valid_offer()
    no_ice = "\r\n".join(line for line in offer.split("\r\n") if not line.startswith("a=ice-pwd"))
    with pytest.raises(InvalidSdp, match="ICE"):
        await participant.publish(no_ice)
    unsupported = offer.replace("VP8/90000", "AV1X/90000").replace("H264/90000", "AV1X/90000")
    with pytest.raises(InvalidSdp, match="forwards VP8 or H264 only"):
        await participant.publish(unsupported)


async def test_the_room_keeps_working_after_bad_input(room: Room) -> None:
    await room.join("teacher")
    participant = room.add_participant("student")
    for sdp in GARBAGE:
        with pytest.raises(InvalidSdp):
            await participant.publish(sdp)
    with pytest.raises(InvalidState, match="no subscribe offer"):
        await participant.subscribe_answer("v=0\r\n")
    with pytest.raises(InvalidState):
        await participant.add_ice_candidate("publish", {"candidate": "x", "sdpMid": "0"})
    with pytest.raises(InvalidState):
        await participant.add_ice_candidate("subscribe", None)

    # The subscribe offer for the teacher's media is outstanding: answer it badly, then well.
    await wait_for(lambda: "student" in room.events.offers, what="the student's subscribe offer")
    offer, streams = room.events.offers["student"]
    with pytest.raises(InvalidSdp):
        await participant.subscribe_answer("v=0\r\nnonsense")
    client = MediaClient(LOOPBACK)
    room.clients["student"] = client
    answer = await client.subscribe_offer(offer, dict(streams))
    truncated = answer.split("m=video")[0]
    with pytest.raises(InvalidSdp):
        await participant.subscribe_answer(truncated)  # media sections do not match
    await participant.subscribe_answer(answer)
    with pytest.raises(InvalidState):
        await participant.subscribe_answer(answer)  # nothing outstanding any more
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.decoded >= 5,
        what="media after the errors",
    )
    # A second participant still joins and publishes normally.
    await room.join("other")
    await wait_for(
        lambda: (s := room.sink("teacher", "other", "video")) is not None and s.decoded >= 5,
        what="the newcomer's media",
    )


async def test_malformed_trickle_candidates_raise_invalid_candidate(room: Room) -> None:
    client = await room.join("teacher")
    participant = room.participants["teacher"]
    assert client.publish_pc is not None
    for bad in (
        {"candidate": "candidate:1 1 udp", "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp notanumber 127.0.0.1 9 typ host", "sdpMid": "0"},
        {"candidate": 42, "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"},
        {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMLineIndex": -1},
    ):
        with pytest.raises(InvalidCandidate):
            await participant.add_ice_candidate("publish", bad)
    with pytest.raises(InvalidState):
        await participant.add_ice_candidate("nonsense", None)  # type: ignore[arg-type]
    await participant.add_ice_candidate(
        "publish", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
    )
    await participant.add_ice_candidate("publish", None)


async def test_a_duplicate_participant_id_is_refused_and_closed_objects_refuse_calls(
    room: Room,
) -> None:
    participant = room.router.add_participant(ParticipantId("p"))
    with pytest.raises(InvalidState):
        room.router.add_participant(ParticipantId("p"))
    await participant.close()
    with pytest.raises(Closed):
        await participant.publish("v=0")
    with pytest.raises(Closed):
        await participant.subscribe_answer("v=0")
    room.router.add_participant(ParticipantId("p"))  # the id is free again

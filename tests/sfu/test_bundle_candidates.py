"""Remote descriptions that list candidates in the first bundled m-section only (what
Chromium sends with max-bundle) still give the server every candidate."""

from __future__ import annotations

from aiortc import RTCSessionDescription

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from sfu import ParticipantId, create_peer_connection
from sfu.sdp import check_answer, parse, share_bundle_candidates


def first_section_only(sdp: str) -> str:
    """`sdp` with candidate lines removed from every m-section but the first (Chromium's
    max-bundle shape)."""
    out: list[str] = []
    section = -1
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            section += 1
        if section > 0 and (line.startswith("a=candidate:") or line == "a=end-of-candidates"):
            continue
        out.append(line)
    return "\r\n".join(out)


def candidates_per_section(sdp: str) -> list[int]:
    return [len(media.ice_candidates) for media in parse(sdp).media]


async def client_offer() -> tuple[MediaClient, str]:
    client = MediaClient(LOOPBACK, video=vp8_clip(30), audio=ToneAudioTrack())
    return client, await client.publish_offer()


async def test_the_first_sections_candidates_are_copied_to_the_last_bundled_one() -> None:
    client, offer = await client_offer()
    try:
        assert candidates_per_section(offer) == [1, 1]  # ours: where aiortc reads them
        stripped = first_section_only(offer)
        assert candidates_per_section(stripped) == [1, 0]
        description = parse(stripped)
        assert share_bundle_candidates(description) == 1
        shared = str(description)
        assert candidates_per_section(shared) == [1, 1]
        assert shared.count("a=end-of-candidates") == 2
        # On text (an answer the server applies), the candidate lines are appended to the
        # last section, nothing else is rewritten.
        answer = stripped.replace("a=setup:actpass", "a=setup:active")
        appended = check_answer(answer)
        first_section = answer.split("\r\nm=")[1]
        candidate_lines = [line for line in first_section.split("\r\n") if "candidate" in line]
        assert len(candidate_lines) == 2  # one candidate and a=end-of-candidates
        assert appended.startswith(answer.rstrip("\r\n"))
        assert appended.rstrip("\r\n").endswith("\r\n".join(candidate_lines))
        assert candidates_per_section(appended) == [1, 1]
        # Sections with candidates of their own are left alone.
        assert share_bundle_candidates(parse(offer)) == 0
        full = offer.replace("a=setup:actpass", "a=setup:active")
        assert check_answer(full) == full
    finally:
        await client.close()


async def test_aiortc_alone_would_lose_them_which_is_why_the_copy_is_needed() -> None:
    # The reason for share_bundle_candidates: with max-bundle, aiortc 1.16 adds the
    # candidates of the *last* bundled section to the shared transport.
    client, offer = await client_offer()
    server = create_peer_connection(LOOPBACK)
    fixed = create_peer_connection(LOOPBACK)
    try:
        stripped = first_section_only(offer)
        await server.setRemoteDescription(RTCSessionDescription(stripped, "offer"))
        description = parse(stripped)
        share_bundle_candidates(description)
        await fixed.setRemoteDescription(RTCSessionDescription(str(description), "offer"))
        ice = server.getTransceivers()[0].receiver.transport.transport
        fixed_ice = fixed.getTransceivers()[0].receiver.transport.transport
        assert ice.getRemoteCandidates() == []
        assert len(fixed_ice.getRemoteCandidates()) == 1
    finally:
        for pc in (server, fixed):
            await pc.close()
        await client.close()


async def test_media_flows_when_offers_and_answers_carry_first_section_candidates_only() -> None:
    # Nothing is trickled: the server has only the SDP's candidates to go by, in both
    # directions (the publish offer and the subscribe answer), as with a browser that
    # sends its description after gathering.
    room = Room()
    teacher, offer = await client_offer()
    viewer = MediaClient(room.config, decode="all")
    try:
        publisher = room.router.add_participant(ParticipantId("teacher"), {})
        await teacher.publish_answer(await publisher.publish(first_section_only(offer)))
        subscriber = room.add_participant("viewer")
        await wait_for(lambda: "viewer" in room.events.offers, what="a subscribe offer")
        sdp, streams = room.events.offers["viewer"]
        answer = await viewer.subscribe_offer(sdp, streams)
        assert candidates_per_section(first_section_only(answer)) == [1, 0]
        await subscriber.subscribe_answer(first_section_only(answer))

        def decoded() -> int:
            return sum(
                sink.decoded
                for stream in viewer.streams_of("teacher")
                if (sink := stream.sinks.get("video")) is not None
            )

        await wait_for(lambda: decoded() >= 5, timeout=10, what="video from the teacher")
        assert publisher.connected and subscriber.connected
        # ICE could have got by on peer-reflexive candidates learnt from the clients'
        # checks; the server also knows the candidates the SDP listed.
        for pc in (publisher.publish_pc, subscriber.subscribe_pc):
            assert pc is not None
            ice = pc.getTransceivers()[0].receiver.transport.transport
            assert "host" in {c.type for c in ice.getRemoteCandidates()}
    finally:
        await room.close()
        await teacher.close()
        await viewer.close()

"""Bundled SDP is sent compact (transport attributes once at the session level, candidates
only where receivers read them), so a full room's subscribe answer fits in one WebSocket
frame, and compact SDP means the same to aiortc as the long form."""

from __future__ import annotations

import json
import time

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from scripts.support.loopback import LOOPBACK, Room, crowded_subscribe_offer, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from sfu import create_peer_connection, set_local_description
from sfu.sdp import candidate_sections, compact_bundle, parse

WS_FRAME_LIMIT = 64 * 1024
"""The contract's frame limit (WS_MAX_FRAME_BYTES default)."""


async def long_form_offer(pc: RTCPeerConnection, tracks: int) -> str:
    for _ in range(tracks):
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
    await set_local_description(pc, await pc.createOffer(), LOOPBACK)
    assert pc.localDescription is not None
    return pc.localDescription.sdp


def transport_of(sdp: str) -> list[tuple[object, ...]]:
    transports: list[tuple[object, ...]] = []
    for m in parse(sdp).media:
        assert m.ice is not None and m.dtls is not None
        sha256 = tuple(f.value for f in m.dtls.fingerprints if f.algorithm == "sha-256")
        transports.append((m.ice.usernameFragment, m.ice.password, sha256, m.dtls.role))
    return transports


async def test_compact_sdp_says_the_same_in_fewer_bytes() -> None:
    pc = create_peer_connection(LOOPBACK)
    try:
        long_form = await long_form_offer(pc, 2)
        compact = compact_bundle(long_form)
        assert len(compact) < 0.7 * len(long_form)
        session, _, media = compact.partition("\r\nm=")
        assert "a=ice-ufrag:" in session and "a=fingerprint:sha-256" in session
        assert "a=ice-ufrag:" not in media and "a=fingerprint:" not in media
        # Candidates in the tagged section, the last audio one and the last one.
        assert [len(m.ice_candidates) for m in parse(compact).media] == [1, 0, 1, 1]
        # Every section still has the same transport, and aiortc reads the compact form
        # as the long form, but for the candidates of the section between
        # (one fingerprint: Chromium refuses several at one level).
        assert compact.count("a=fingerprint:") == 1
        assert transport_of(compact) == transport_of(long_form)
        sha256_only = "\r\n".join(
            line
            for line in long_form.split("\r\n")
            if not line.startswith(("a=fingerprint:sha-384", "a=fingerprint:sha-512"))
        )
        expected = parse(sha256_only)
        expected.media[1].ice_candidates = []
        expected.media[1].ice_candidates_complete = False
        assert str(parse(compact)) == str(expected)
        assert compact_bundle(compact) == compact
        # Not bundled, or sections on different transports: left as is.
        single = long_form.replace("a=group:BUNDLE 0 1 2 3", "a=group:BUNDLE 0")
        assert compact_bundle(single) == single
        first_ufrag = long_form.index("a=ice-ufrag:")
        differing = long_form[:first_ufrag] + "a=ice-ufrag:zzzz\r\na=x" + long_form[first_ufrag:]
        assert compact_bundle(differing) == differing
    finally:
        await pc.close()


async def test_media_flows_with_compact_sdp_both_ways() -> None:
    room = Room()
    try:
        await room.join("teacher")
        await room.join("viewer", video=False, audio=False)
        await wait_for(lambda: "viewer" in room.events.offers, what="a subscribe offer")
        offer, _ = room.events.offers["viewer"]
        assert offer.count("a=ice-ufrag:") == 1
        assert offer.count("a=candidate:") == 2  # audio (tagged) and video (last)
        await wait_for(
            lambda: room.decoded("viewer", "teacher") >= 5, timeout=10, what="teacher's video"
        )
    finally:
        await room.close()


def test_candidates_stay_in_the_tagged_section_and_where_aiortc_reads_them() -> None:
    assert candidate_sections(["audio", "video"], 0) == {0, 1}
    assert candidate_sections(["audio", "video", "audio", "video"], 0) == {0, 2, 3}
    assert candidate_sections(["audio", "audio", "video"], 0) == {0, 1, 2}
    assert candidate_sections(["video", "audio", "audio"], 0) == {0, 2}
    assert candidate_sections(["audio", "video", "audio", "video"], 1) == {1, 3}


async def subscribe_offer_for(publishers: list[tuple[bool, bool]]) -> str:
    """The first subscribe offer of a viewer in a room of publishers with (audio, video)."""
    room = Room()
    clients = []
    try:
        for index, (audio, video) in enumerate(publishers):
            client = MediaClient(
                LOOPBACK,
                video=vp8_clip(3) if video else None,
                audio=ToneAudioTrack() if audio else None,
            )
            clients.append(client)
            participant = room.add_participant(f"p{index}")
            await participant.publish(await client.publish_offer())
        room.add_participant("viewer")
        await wait_for(lambda: "viewer" in room.events.offers, what="the viewer's offer")
        return room.events.offers["viewer"][0]
    finally:
        await room.close()
        for client in clients:
            await client.close()


@pytest.mark.parametrize(
    "publishers",
    [[(True, True)], [(True, True), (True, True)], [(True, False), (True, True)]],
    ids=["one camera", "two cameras", "a microphone then a camera"],
)
@pytest.mark.parametrize(
    "policy", [RTCBundlePolicy.MAX_BUNDLE, RTCBundlePolicy.BALANCED, RTCBundlePolicy.MAX_COMPAT]
)
async def test_stock_aiortc_takes_the_candidates_of_the_compact_offer(
    publishers: list[tuple[bool, bool]], policy: RTCBundlePolicy
) -> None:
    # Only the bundle's transport is kept; it must know the server's candidates from the
    # SDP. (With "balanced", aiortc itself leaves a second video section on a transport
    # it closes, whoever made the offer: stock clients of a large class use max-bundle.)
    offer = await subscribe_offer_for(publishers)
    listed = {(c.ip, c.port) for m in parse(offer).media for c in m.ice_candidates}
    assert len(listed) == 1
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=policy))
    try:
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        tagged = next(t for t in pc.getTransceivers() if t.mid == "0")
        ice = tagged.receiver.transport.transport
        assert {(c.ip, c.port) for c in ice.getRemoteCandidates()} == listed
    finally:
        await pc.close()


def answer_frame(answer_sdp: str) -> bytes:
    """The WebSocket frame a client sends with its subscribe answer."""
    return json.dumps(
        {
            "event": "WEBRTC_ANSWER",
            "data": {"pc": "subscribe", "answer": {"type": "answer", "sdp": answer_sdp}},
        }
    ).encode()


async def test_a_full_rooms_subscribe_answer_fits_in_one_frame() -> None:
    # 49 publishers with audio and video (ROOM_MAX_PARTICIPANTS 50): 98 m-sections.
    room = Room()
    viewer = MediaClient(LOOPBACK)
    publishers: list[MediaClient] = []
    started = time.monotonic()
    try:
        subscriber, offer, streams, publishers = await crowded_subscribe_offer(room, 49)
        assert len(parse(offer).media) == 98
        answer = await viewer.subscribe_offer(offer, streams)
        # ~53 kB here (about 540 bytes per m-section; the long form was ~1.4 kB).
        assert len(answer_frame(answer)) < 0.85 * WS_FRAME_LIMIT, len(answer_frame(answer))
        await subscriber.subscribe_answer(answer)
        assert len(subscriber.consumers) == 98
        assert subscriber.stats().subscribe_state != "failed"
    finally:
        await room.close()
        for client in [viewer, *publishers]:
            await client.close()
    assert time.monotonic() - started < 60

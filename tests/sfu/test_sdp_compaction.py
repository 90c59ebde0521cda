"""Bundled SDP is sent compact (transport attributes once, candidates once), so a full
room's subscribe answer fits in one WebSocket frame, and compact SDP means the same to
aiortc as the long form."""

from __future__ import annotations

import json
import time

from aiortc import RTCPeerConnection

from scripts.support.loopback import LOOPBACK, Room, crowded_subscribe_offer, wait_for
from scripts.synthpeer.client import MediaClient
from sfu import create_peer_connection, set_local_description
from sfu.sdp import compact_bundle, expand_bundle, parse

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
        assert [len(m.ice_candidates) for m in parse(compact).media] == [1, 0, 0, 0]
        # Every section still has the same transport, and aiortc's own reading of the
        # expanded form is the long form's.
        # (one fingerprint: Chromium refuses several at one level).
        assert compact.count("a=fingerprint:") == 1
        assert transport_of(compact) == transport_of(long_form)
        expanded = expand_bundle(compact)
        # aiortc reads the candidates of the last bundled section only.
        assert [len(m.ice_candidates) for m in parse(expanded).media] == [1, 0, 0, 1]
        sha256_only = "\r\n".join(
            line
            for line in long_form.split("\r\n")
            if not line.startswith(("a=fingerprint:sha-384", "a=fingerprint:sha-512"))
        )
        expected = parse(sha256_only)
        for section in expected.media[1:-1]:
            section.ice_candidates = []
            section.ice_candidates_complete = False
        assert str(parse(expanded)) == str(expected)
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
        assert offer.count("a=candidate:") == 1
        await wait_for(
            lambda: room.decoded("viewer", "teacher") >= 5, timeout=10, what="teacher's video"
        )
    finally:
        await room.close()


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
        # ~49 kB here (about 500 bytes per m-section; the long form was ~1.4 kB).
        assert len(answer_frame(answer)) < 0.8 * WS_FRAME_LIMIT, len(answer_frame(answer))
        await subscriber.subscribe_answer(answer)
        assert len(subscriber.consumers) == 98
        assert subscriber.stats().subscribe_state != "failed"
    finally:
        await room.close()
        for client in [viewer, *publishers]:
            await client.close()
    assert time.monotonic() - started < 60

"""Every bundled m-section the server sends carries what a standards-following receiver
needs (`tests.sfu.bundle_rules`): the subscribe offer of a full room, a renegotiated one,
the publish answer, with several candidates and with an announced address."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from scripts.support.loopback import LOOPBACK, Room, crowded_subscribe_offer, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from sfu import MediaConfig
from tests.sfu.bundle_rules import bundle_problems

TWO_ADDRESSES = replace(LOOPBACK, host_addresses=("127.0.0.1", "127.0.0.2"))
ANNOUNCED = replace(LOOPBACK, announced_address="203.0.113.7")


async def server_sdps(config: MediaConfig) -> dict[str, str]:
    """What the server sends in a class of three: a publish answer, the first subscribe
    offer of a late joiner, and the re-offer after someone left."""
    room = Room(config)
    client = MediaClient(config, video=vp8_clip(3), audio=ToneAudioTrack())
    try:
        await room.join("teacher")
        await room.join("student")
        publisher = room.add_participant("late")
        answer = await publisher.publish(await client.publish_offer())
        await wait_for(lambda: "late" in room.events.offers, what="the late joiner's offer")
        first_offer, _ = room.events.offers["late"]
        await room.leave("student")
        await wait_for(
            lambda: room.events.offers["teacher"][0].count("a=inactive") >= 2,
            what="the teacher's re-offer without the student",
        )
        return {
            "publish answer": answer,
            "subscribe offer": first_offer,
            "re-offer": room.events.offers["teacher"][0],
        }
    finally:
        await room.close()
        await client.close()


@pytest.mark.parametrize("config", [LOOPBACK, TWO_ADDRESSES, ANNOUNCED], ids=["1", "2", "nat"])
async def test_what_the_server_sends_in_a_class_meets_the_rules(config: MediaConfig) -> None:
    sdps = await server_sdps(config)
    candidates = len(config.host_addresses)
    for name, sdp in sdps.items():
        sdp_type = "answer" if name == "publish answer" else "offer"
        assert bundle_problems(sdp, sdp_type) == [], name
        first = sdp.split("\r\nm=")[1]
        assert first.count("a=candidate:") == candidates, name
        if config.announced_address is not None:
            assert f" {config.announced_address} " in first


async def test_a_full_rooms_subscribe_offer_meets_the_rules() -> None:
    room = Room()
    try:
        _, offer, _, publishers = await crowded_subscribe_offer(room, 49)
        assert offer.count("m=") == 98
        assert bundle_problems(offer, "offer") == []
    finally:
        await room.close()
        for client in publishers:
            await client.close()


def _drop(sdp: str, prefix: str, keep: int = 0) -> str:
    """`sdp` without the lines starting with `prefix`, but the first `keep` of them."""
    out, seen = [], 0
    for line in sdp.split("\r\n"):
        if line.startswith(prefix):
            seen += 1
            if seen > keep:
                continue
        out.append(line)
    return "\r\n".join(out)


def _second_fingerprint(sdp: str) -> str:
    line = next(x for x in sdp.split("\r\n") if x.startswith("a=fingerprint:"))
    return sdp.replace(line, line + "\r\n" + line.replace("sha-256", "sha-384"), 1)


def _short_ufrag(sdp: str) -> str:
    return _drop(sdp, "a=ice-ufrag:").replace("a=ice-pwd:", "a=ice-ufrag:ab\r\na=ice-pwd:", 1)


def _second_section_disabled(sdp: str) -> str:
    head, first, second, *rest = sdp.split("\r\nm=")
    kind, _, other = second.split(" ", 2)
    return "\r\nm=".join([head, first, f"{kind} 0 {other}", *rest])


MUTATIONS: dict[str, tuple[Callable[[str], str], str]] = {
    "no session ice-ufrag": (lambda s: _drop(s, "a=ice-ufrag:"), "needs one a=ice-ufrag"),
    "short ice-ufrag": (_short_ufrag, "is not 4-256 ice-chars"),
    "two fingerprints": (_second_fingerprint, "needs one sha-256 a=fingerprint"),
    "setup active in an offer": (
        lambda s: s.replace("a=setup:actpass", "a=setup:active"),
        "setup 'active' in an offer",
    ),
    "no rtcp-mux": (lambda s: _drop(s, "a=rtcp-mux", keep=1), "no a=rtcp-mux"),
    "candidates in the first section only": (
        lambda s: _drop(s, "a=candidate:", keep=1),
        "where stock aiortc (max-bundle) reads them",
    ),
    "no end-of-candidates": (lambda s: _drop(s, "a=end-of-candidates"), "no a=end-of-candidates"),
    "unknown mid in BUNDLE": (
        lambda s: s.replace("a=group:BUNDLE 0 ", "a=group:BUNDLE 0 9 "),
        "BUNDLE lists",
    ),
    "a disabled section": (_second_section_disabled, "port 0 without a=bundle-only"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
async def test_the_rules_catch_what_a_receiver_would_refuse(mutation: str) -> None:
    room = Room()
    try:
        _, offer, _, publishers = await crowded_subscribe_offer(room, 2)
    finally:
        await room.close()
    for client in publishers:
        await client.close()
    assert bundle_problems(offer, "offer") == []
    change, problem = MUTATIONS[mutation]
    problems = bundle_problems(change(offer), "offer")
    assert any(problem in p for p in problems), problems

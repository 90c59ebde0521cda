"""SDP decisions and negotiation bookkeeping as pure functions (no network)."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpSender

from sfu import MediaConfig, create_peer_connection
from sfu.codecs import choose_codec
from sfu.errors import InvalidSdp
from sfu.sdp import (
    ABS_SEND_TIME_URI,
    announce_address,
    media_sections,
    parse,
    plan_publish,
    strip_header_extension,
)
from sfu.subscription import OfferState


async def _client_offer(video_codec: str | None = None) -> str:
    pc = create_peer_connection(MediaConfig())
    try:
        pc.addTransceiver("audio", direction="sendonly")
        video = pc.addTransceiver("video", direction="sendonly")
        if video_codec is not None:
            caps = RTCRtpSender.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in caps if c.name in (video_codec, "rtx")])
        offer = await pc.createOffer()
        # a minimal transport section, as setLocalDescription would add
        lines = []
        for line in offer.sdp.split("\r\n"):
            lines.append(line)
            if line.startswith("a=mid:"):
                lines += [
                    "a=ice-ufrag:abcd",
                    "a=ice-pwd:abcdefghijklmnopqrstuv",
                    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
                    "a=setup:actpass",
                ]
        return "\r\n".join(lines)
    finally:
        await pc.close()


async def test_a_publish_offer_keeps_opus_and_one_video_codec_with_its_rtx() -> None:
    plan = plan_publish(await _client_offer(), ("VP8", "H264"))
    audio, video = (plan.media[m] for m in ("0", "1"))
    assert audio.kind == "audio" and audio.codec is not None and audio.codec.name == "opus"
    assert video.kind == "video" and video.codec is not None and video.codec.name == "VP8"
    kept = parse(plan.sdp).media
    assert [c.name for c in kept[0].rtp.codecs] == ["opus"]
    assert [c.name for c in kept[1].rtp.codecs] == ["VP8", "rtx"]
    assert kept[1].fmt == [c.payloadType for c in kept[1].rtp.codecs]


async def test_abs_send_time_is_kept_for_remb_unless_turned_off() -> None:
    offer = await _client_offer()
    assert ABS_SEND_TIME_URI in plan_publish(offer, ("VP8",)).sdp
    assert ABS_SEND_TIME_URI not in plan_publish(offer, ("VP8",), remb=False).sdp


async def test_h264_is_chosen_when_it_is_what_the_publisher_offers_or_the_server_prefers() -> None:
    plan = plan_publish(await _client_offer("H264"), ("VP8", "H264"))
    codec = plan.media["1"].codec
    assert codec is not None and codec.name == "H264"
    assert dict(codec.parameters)["packetization-mode"] == "1"
    preferred = plan_publish(await _client_offer(), ("H264", "VP8")).media["1"].codec
    assert preferred is not None and preferred.name == "H264"


async def test_an_offer_without_a_forwardable_codec_is_refused_with_the_reason() -> None:
    offer = (await _client_offer("VP8")).replace("VP8/90000", "VP9/90000")
    with pytest.raises(InvalidSdp, match=r"offers VP9, rtx; the server forwards VP8 only"):
        plan_publish(offer, ("VP8",))
    assert choose_codec("video", [], ("VP8",)) is None


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("", "empty"),
        ("m=audio 9 RTP 0", "v= line"),
        ("v=0\r\nm=audio x UDP 0\r\n", "cannot be parsed"),
    ],
)
def test_unparseable_sdp_raises_invalid_sdp(sdp: str, reason: str) -> None:
    with pytest.raises(InvalidSdp, match=reason):
        plan_publish(sdp, ("VP8",))


def test_the_announced_address_replaces_only_our_host_candidates() -> None:
    sdp = "\r\n".join(
        [
            "c=IN IP4 10.0.0.5",
            "a=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host",
            "a=candidate:2 1 udp 1694498815 198.51.100.1 40000 typ srflx "
            "raddr 10.0.0.5 rport 40000",
            "a=candidate:3 1 udp 2130706431 10.9.9.9 40001 typ host",
        ]
    )
    out = announce_address(sdp, ["10.0.0.5"], "203.0.113.7").split("\r\n")
    assert out[0] == "c=IN IP4 203.0.113.7"
    assert out[1] == "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"
    assert out[2].startswith("a=candidate:2 1 udp 1694498815 198.51.100.1 ")
    assert "10.9.9.9" in out[3]
    assert announce_address(sdp, None, "203.0.113.7").count("203.0.113.7") == 3
    assert announce_address(sdp, ["10.0.0.5"], None) == sdp


def test_abs_send_time_is_stripped_from_our_offers() -> None:
    sdp = f"a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:3 {ABS_SEND_TIME_URI}\r\nx"
    assert strip_header_extension(sdp, ABS_SEND_TIME_URI) == (
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\nx"
    )


async def test_media_sections_report_mid_direction_codec_and_msid() -> None:
    sections = media_sections(await _client_offer())
    assert [(s.mid, s.kind, s.direction, s.codec) for s in sections] == [
        ("0", "audio", "sendonly", "opus"),
        ("1", "video", "sendonly", "VP8"),
    ]
    assert all(s.stream_id and s.track_id for s in sections)


def test_only_one_offer_is_outstanding_and_changes_meanwhile_fold_into_the_next() -> None:
    state = OfferState()
    assert state.changed() is True
    assert state.start_building() is True
    assert state.changed() is False  # building: folded
    state.offer_sent()
    assert state.changed() is False  # awaiting the answer: folded
    assert state.start_building() is False
    assert state.answer_applied() is True  # one more offer carries both changes
    assert state.start_building() is True
    state.offer_sent()
    assert state.answer_applied() is False
    assert state.start_building() is False


def test_media_config_validates_its_fields() -> None:
    with pytest.raises(ValueError):
        MediaConfig(host_addresses=("not-an-ip",))
    with pytest.raises(ValueError):
        MediaConfig(port_range=(50000, 40000))
    with pytest.raises(ValueError):
        MediaConfig(video_codecs=("VP9",))
    assert MediaConfig(host_addresses=["127.0.0.1"]).host_addresses == ("127.0.0.1",)

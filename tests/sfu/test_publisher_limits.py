"""What a publisher may send, with real aiortc peers over loopback: a track over its
cap is cut to it (native and Python receive paths), and RTP of an SSRC or a mid nobody
negotiated is dropped and counted while the publisher's real tracks keep flowing."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

import pytest
from aiortc import RTCPeerConnection

from scripts.support.loopback import LOOPBACK, Room, wait_for
from sfu import aiortc_adapter, native_receive, refused_packet_totals
from sfu.aiortc_adapter import testing
from sfu.track_caps import TrackCaps
from tests.native_extensions import require_extension

VIDEO_PACKET_CAP = 40  # the clip sends about three packets per frame at 30 fps


def publish_pc(room: Room, name: str) -> RTCPeerConnection:
    pc = room.clients[name].publish_pc
    assert pc is not None
    return pc


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
async def test_a_video_track_over_its_packet_cap_is_cut_to_it(native: bool) -> None:
    if native:
        require_extension(native_receive.AVAILABLE, "sfu._receive")
    caps = TrackCaps(video_packet_rate=VIDEO_PACKET_CAP)
    room = Room(dataclasses.replace(LOOPBACK, native_receive=native, track_caps=caps))
    before = refused_packet_totals()["track_cap"]
    try:
        await room.join("teacher")
        await room.join("student", video=False, audio=False)
        video = next(p for p in room.router.producers.values() if p.kind == "video")
        await wait_for(
            lambda: refused_packet_totals()["track_cap"] > before + 20,
            timeout=10,
            what="packets over the cap refused",
        )
        start, packets = time.monotonic(), video.stats().packets
        await asyncio.sleep(2.0)
        elapsed, admitted = time.monotonic() - start, video.stats().packets - packets
        # At most the rate for the time, plus one bucket (one second) it may have saved.
        assert admitted <= VIDEO_PACKET_CAP * (elapsed + 1.0)
        assert admitted > 0  # capped, not cut off
        audio = next(p for p in room.router.producers.values() if p.kind == "audio")
        assert audio.stats().packets > 50  # the other track is not charged
    finally:
        await room.close()


async def test_rtp_nobody_negotiated_is_dropped_and_the_real_tracks_flow(room: Room) -> None:
    require_extension(native_receive.AVAILABLE, "sfu._receive")
    await room.join("teacher")
    await room.join("student", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 30,
        timeout=10,
        what="the teacher's video at the student",
    )
    server_pc = room.participants["teacher"].publish_pc
    assert server_pc is not None
    [native] = aiortc_adapter.native_receive_of(server_pc)
    receiver = native.receiver
    assert receiver is not None
    video = next(p for p in room.router.producers.values() if p.kind == "video")
    sdp = publish_pc(room, "teacher").localDescription.sdp
    match = re.search(r"a=rtpmap:(\d+) VP8/90000", sdp)
    assert match is not None
    video_pt = int(match.group(1))
    ssrcs_before = sorted(receiver.ssrcs)
    vp8_key = b"\x90\x80\x01\x00" + bytes(40)
    for seq in range(30):
        # The video's own payload type: aiortc alone would adopt the SSRC for the
        # teacher's video (one receiver has that payload type); its offer named its SSRC.
        await testing.send_raw_rtp(publish_pc(room, "teacher"), 0x5EED_0001, video_pt, seq, vp8_key)
        await testing.send_raw_rtp(
            publish_pc(room, "teacher"), 0x5EED_0002, video_pt, seq, vp8_key, mid="99"
        )
    await wait_for(
        lambda: (
            receiver.refused["unknown_ssrc"] >= 30 and receiver.refused["unnegotiated_mid"] >= 30
        ),
        timeout=10,
        what="the stray packets refused",
    )
    assert sorted(receiver.ssrcs) == ssrcs_before  # no stream was added for them
    assert video.stats().packets > 0
    sink = room.sink("student", "teacher", "video")
    assert sink is not None
    frames = sink.frames
    await wait_for(
        lambda: sink.frames >= frames + 30, timeout=10, what="the teacher's video going on"
    )
    assert sink.decode_errors == 0

"""The server's subscribe m-sections only send: their receivers hold no NACK generator or
bandwidth estimator (~96 kB each for video), and media still flows both ways of RTCP."""

from __future__ import annotations

from scripts.support.loopback import Room, wait_for
from sfu import aiortc_adapter


async def test_subscribe_receivers_hold_nothing_and_media_still_flows() -> None:
    room = Room()
    try:
        await room.join("teacher")
        await room.join("alice")
        await room.join("bob", video=False, audio=False)

        await wait_for(
            lambda: room.decoded("bob", "teacher") >= 10 and room.decoded("bob", "alice") >= 10
        )
        subscribe_pc = room.participants["bob"].subscribe_pc
        assert subscribe_pc is not None
        transceivers = subscribe_pc.getTransceivers()
        assert len(transceivers) == 4
        assert all(aiortc_adapter.receive_state_released(t.receiver) for t in transceivers)
        # Subscriber RTCP (PLI for a new keyframe) still reaches the producer.
        before = room.participants["teacher"].stats().producers
        requests = sum(p.keyframe_requests for p in before)
        await room.join("carol", video=False, audio=False)
        await wait_for(lambda: room.decoded("carol", "teacher") >= 5)
        after = room.participants["teacher"].stats().producers
        assert sum(p.keyframe_requests for p in after) > requests
        # The publish side keeps its estimator (REMB towards the publisher).
        publish_pc = room.participants["teacher"].publish_pc
        assert publish_pc is not None
        video = next(t for t in publish_pc.getTransceivers() if t.kind == "video")
        assert not aiortc_adapter.receive_state_released(video.receiver)
    finally:
        await room.close()

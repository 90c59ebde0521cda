"""Forwarding survives packet loss on both hops (NACK/RTX hop by hop)."""

from __future__ import annotations

import pytest

from scripts.support.loopback import CLIP_FRAMES, SEND_CONFIGS, Room, wait_for


@pytest.mark.parametrize("send", SEND_CONFIGS)
async def test_two_percent_packet_loss_each_way_still_yields_decodable_video(
    send: str,
) -> None:
    room = Room(SEND_CONFIGS[send])
    try:
        await _lossy_room(room)
    finally:
        await room.close()


async def _lossy_room(room: Room) -> None:
    # Every 50th RTP packet is dropped leaving the publisher and arriving at the subscriber.
    publisher = await room.join("teacher", loss_every=50)
    subscriber = await room.join("student", video=False, audio=False, loss_every=50)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 90,
        timeout=8,
        what="3 s of video through lossy links",
    )
    sink = room.sink("student", "teacher", "video")
    assert sink is not None
    assert publisher.dropped >= 5 and subscriber.dropped >= 5
    assert sink.decode_errors == 0
    assert sink.sizes == {(640, 360)}
    assert sink.order_violations(CLIP_FRAMES) == 0, sink.indices
    assert sink.fps() >= 25
    assert sink.decoded >= 85
    assert sink.losses == 0  # every lost packet was retransmitted in time, on both hops

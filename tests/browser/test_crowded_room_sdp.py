"""Chromium takes the server's compact subscribe offer for a full room (49 publishers
with audio and video, 98 m-sections), and its answer fits in one WebSocket frame."""

from __future__ import annotations

from playwright.async_api import Browser

from scripts.support.loopback import Room, crowded_subscribe_offer
from scripts.synthpeer.client import MediaClient
from sfu.sdp import parse
from tests.sfu.test_sdp_compaction import WS_FRAME_LIMIT, answer_frame

ANSWER_IN_CHROMIUM = """async (offer) => {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  await pc.setRemoteDescription({ type: "offer", sdp: offer });
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
  });
  const sdp = pc.localDescription.sdp;
  pc.close();
  return sdp;
}"""


async def test_chromium_answers_a_full_rooms_offer_within_one_frame(browser: Browser) -> None:
    room = Room()
    publishers: list[MediaClient] = []
    try:
        subscriber, offer, _, publishers = await crowded_subscribe_offer(room, 49)
        assert offer.count("a=ice-ufrag:") == 1
        page = await browser.new_page()
        try:
            answer: str = await page.evaluate(ANSWER_IN_CHROMIUM, offer)
        finally:
            await page.close()
        assert len(parse(answer).media) == 98
        frame = len(answer_frame(answer))
        print(f"Chromium's answer: {len(answer)} characters, frame {frame} bytes")
        assert frame < WS_FRAME_LIMIT, frame
        await subscriber.subscribe_answer(answer)
        assert len(subscriber.consumers) == 98
    finally:
        await room.close()
        for client in publishers:
            await client.close()

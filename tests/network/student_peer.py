"""A student on a restrictive network, run by the network tests as a child process.

    ip netns exec <student namespace> python -m tests.network.student_peer '<json>'

The JSON gives ``baseUrl``, ``account`` (id, name, email, role, token), ``classId``,
``hostAddress``, ``turnTransports``, ``relayOnly``, ``connectTimeout`` and
``teacherId``. The student joins the class's live room through the public API only
(`SyntheticPeer`), publishes audio and video, and prints one JSON line: either
``{"connected": false, "error", "elapsed"}`` or ``{"connected": true, ...}`` with the
selected candidate pairs, what it decoded from the teacher and join-to-first-frame. It
keeps its media running until a line arrives on stdin, then leaves and exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from typing import Any

from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import MediaFailed, SyntheticPeer
from sfu import MediaConfig
from sfu.aiortc_adapter import testing as adapter_testing

FRAMES_WANTED = 15


def _received(peer: SyntheticPeer, teacher_id: str) -> dict[str, Any]:
    assert peer.media is not None
    video = audio = errors = 0
    first: float | None = None
    for stream in peer.media.streams_of(teacher_id):
        if (sink := stream.sinks.get("video")) is not None:
            video += sink.decoded
            errors += sink.decode_errors
            if sink.first_keyframe_at is not None:
                first = (
                    sink.first_keyframe_at if first is None else min(first, sink.first_keyframe_at)
                )
        if (sink := stream.sinks.get("audio")) is not None:
            audio += sink.samples_decoded
    return {"videoDecoded": video, "audioSamples": audio, "decodeErrors": errors, "first": first}


def _pairs(peer: SyntheticPeer) -> dict[str, Any]:
    assert peer.media is not None
    pairs = {}
    for name, pc in (("publish", peer.media.publish_pc), ("subscribe", peer.media.subscribe_pc)):
        pair = adapter_testing.selected_pair(pc) if pc is not None else None
        pairs[name] = dataclasses.asdict(pair) if pair is not None else None
    return pairs


async def run(options: dict[str, Any]) -> dict[str, Any]:
    clip = vp8_clip(60)

    def media(config: MediaConfig) -> MediaClient:
        return MediaClient(config, video=clip, audio=ToneAudioTrack(), decode="all")

    async with ClassroomApi(options["baseUrl"]) as api:
        peer = SyntheticPeer(
            api,
            Account(**options["account"]),
            media,
            class_id=options["classId"],
            host_addresses=(options["hostAddress"],),
            relay_only=bool(options.get("relayOnly")),
            turn_transports=tuple(options.get("turnTransports", ("udp", "tcp", "tls"))),
        )
        started = time.monotonic()
        try:
            await peer.join(publish=True)
            await peer.wait_connected(timeout=float(options["connectTimeout"]))
            teacher = options["teacherId"]
            deadline = time.monotonic() + 15
            while True:
                received = _received(peer, teacher)
                if received["videoDecoded"] >= FRAMES_WANTED and received["audioSamples"] > 0:
                    break
                if time.monotonic() > deadline:
                    raise MediaFailed(
                        f"connected, but too little media from the teacher: {received}"
                    )
                await asyncio.sleep(0.02)
        except MediaFailed as failure:
            result = {
                "connected": False,
                "error": str(failure),
                "elapsed": time.monotonic() - started,
            }
            print(json.dumps(result), flush=True)
            await peer.close()
            return result
        first = received.pop("first")
        result = {
            "connected": True,
            **received,
            "joinToFirstFrame": first - peer.join_started if first is not None else None,
            "pairs": _pairs(peer),
            "iceServers": [s.get("urls") for s in peer.room.get("iceServers", [])],
        }
        print(json.dumps(result), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await peer.leave()
        await peer.close()
        return result


def main() -> int:
    asyncio.run(run(json.loads(sys.argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

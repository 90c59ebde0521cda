"""The subscriber of the weak-network benchmark, run as a child process in the shaped
namespace:

    ip netns exec <subscriber namespace> python -m scripts.bench.weak_subscriber '<json>'

The JSON gives ``baseUrl``, ``account`` (id, name, email, role, token), ``classId``,
``teacherId`` and ``hostAddress``. It joins the class's live room through the public API
(`SyntheticPeer`, subscribing like the page), publishes nothing, and decodes every frame
it receives from the teacher. Every 0.1 s it prints a status line
``{"status": {connected, camera, reason, size, decoded, audioSamples, decodeErrors}}``;
when a line arrives on stdin it prints ``{"record": {...}}`` (every ``LAYERS`` event and
every decoded frame, with `time.monotonic()` times: the same clock as its parent's on
Linux), leaves and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.peer import SyntheticPeer
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig

STATUS_EVERY = 0.1


def _sinks(peer: SyntheticPeer, user_id: str, kind: str) -> list[StreamSink]:
    """Every sink (current and finished) of `kind` received from `user_id`."""
    if peer.media is None:
        return []
    return [
        sink
        for stream in peer.media.streams_of(user_id)
        for sink in [*stream.finished, *stream.sinks.values()]
        if sink.kind == kind
    ]


def status(peer: SyntheticPeer, teacher: str) -> dict[str, Any]:
    video, audio = _sinks(peer, teacher, "video"), _sinks(peer, teacher, "audio")
    media = peer.media
    pc = media.subscribe_pc if media is not None else None
    current = peer.layers.current.get(teacher, {})
    last = video[-1].last_size if video else None
    return {
        "connected": pc is not None and pc.connectionState == "connected",
        "camera": current.get("camera"),
        "reason": current.get("reason"),
        "size": list(last) if last else None,
        "decoded": sum(s.decoded for s in video),
        "audioSamples": sum(s.samples_decoded for s in audio),
        "decodeErrors": sum(s.decode_errors for s in [*video, *audio]),
    }


def record(peer: SyntheticPeer, teacher: str) -> dict[str, Any]:
    video, audio = _sinks(peer, teacher, "video"), _sinks(peer, teacher, "audio")
    return {
        "layers": [[at, data] for at, data in peer.layers.events],
        "video": sorted(
            [at, *(size or (0, 0))] for sink in video for at, size in sink.decoded_log or []
        ),
        "audio": sorted(at for sink in audio for at, _ in sink.decoded_log or []),
        "decodeErrors": sum(s.decode_errors for s in [*video, *audio]),
        "videoLosses": sum(s.losses for s in video),
        "framesBeforeKeyframe": sum(s.frames_before_keyframe for s in video),
    }


async def run(options: dict[str, Any]) -> None:
    def media(config: MediaConfig) -> MediaClient:
        return MediaClient(
            config,
            decode="all",
            sink_factory=lambda kind, codec: StreamSink(kind, codec, decode="all", record=True),
        )

    teacher = str(options["teacherId"])
    async with ClassroomApi(options["baseUrl"]) as api:
        peer = SyntheticPeer(
            api,
            Account(**options["account"]),
            media,
            class_id=options["classId"],
            host_addresses=(options["hostAddress"],),
            tiles=8,
        )
        await peer.join(publish=False)
        stop = asyncio.ensure_future(
            asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        )
        while not stop.done():
            print(json.dumps({"status": status(peer, teacher)}), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), STATUS_EVERY)
        print(json.dumps({"record": record(peer, teacher)}), flush=True)
        await peer.leave()
        await peer.close()


def main() -> int:
    asyncio.run(run(json.loads(sys.argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Server side of the forwarding benchmark: one room, in its own process.

Started by `scripts/bench_forwarding.py`; prints ``PORT <n>`` and then speaks a tiny
JSON-lines protocol over one TCP connection on 127.0.0.1 (no aiohttp needed):

- client -> server: ``{"op": "join", "id"}``, ``{"op": "publish", "id", "sdp"}``,
  ``{"op": "subscribe_answer", "id", "sdp"}``, ``{"op": "quit"}``
- server -> client: ``{"op": "answer", "id", "sdp"}``,
  ``{"op": "offer", "id", "sdp", "streams"}``, ``{"op": "error", "id", "message"}``

Modes: ``sfu`` forwards with `sfu.Router` (direct send path), ``sfu-aiortc`` with the
Router on aiortc's stock sender path, ``sfu-python`` is ``sfu`` without the C extensions
(`MediaConfig.native_send` and `native_receive` off: the Python fallback),
``sfu-before`` is ``sfu`` with `native_receive` and `native_fanout` off (the paths of the
code before issue 16: aiortc's receiver and one C send call per consumer),
``sfu-python-receive`` is ``sfu`` receiving through aiortc's receiver and the Python
assembler (`MediaConfig.native_receive` off), ``sfu-eager-reads`` is ``sfu`` with every
subscriber datagram waking the loop (`MediaConfig.coalesce_control_reads` off),
``sfu-per-consumer`` is ``sfu`` with one C send call per consumer instead of the C
fan-out (`MediaConfig.native_fanout` off), ``sfu-no-handoff`` is ``sfu`` with every
received frame going through Python to the C fan-out (`MediaConfig.native_handoff` off),
``sfu-record`` is ``sfu`` while an `sfu.Recorder` writes every producer to a temporary
directory, ``relay`` is the aiortc MediaRelay baseline (the publisher's track decoded
once, re-encoded for every subscriber).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from scripts.support.forwarding import consume_existing, consume_new, stream_labels
from sfu import (
    MediaConfig,
    Participant,
    ParticipantId,
    Producer,
    RouterId,
    RouterListener,
    StreamLabel,
    create_peer_connection,
    set_local_description,
)
from sfu import Router as SfuRouter
from sfu.config import SendPath
from sfu.recorder import Recorder

CONFIG = MediaConfig(host_addresses=("127.0.0.1",), stats_interval=None)


class Channel:
    """One JSON object per line over a TCP stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message).encode() + b"\n")

    async def receive(self) -> dict[str, Any] | None:
        line = await self.reader.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message


class SfuRoom(RouterListener):
    """The room under test: our Router."""

    def __init__(
        self,
        channel: Channel,
        send_path: SendPath,
        record: bool = False,
        **settings: Any,
    ) -> None:
        self.channel = channel
        config = dataclasses.replace(CONFIG, send_path=send_path, **settings)
        self.router = SfuRouter(RouterId("bench"), config, self)
        self.participants: dict[str, Participant] = {}
        self.recorder = Recorder(Path(tempfile.mkdtemp(prefix="bench-rec-"))) if record else None

    def on_producer_added(self, producer: Producer) -> None:
        consume_new(self.router, producer)
        if self.recorder is not None:
            self.recorder.add_producer(producer)

    def on_subscribe_offer(
        self, participant: Participant, offer_sdp: str, streams: dict[str, StreamLabel]
    ) -> None:
        self.channel.send(
            {
                "op": "offer",
                "id": participant.id,
                "sdp": offer_sdp,
                "streams": stream_labels(streams),
            }
        )

    async def join(self, pid: str) -> None:
        participant = self.participants[pid] = self.router.add_participant(ParticipantId(pid))
        consume_existing(self.router, participant)

    async def publish(self, pid: str, sdp: str) -> str:
        return await self.participants[pid].publish(sdp)

    async def subscribe_answer(self, pid: str, sdp: str) -> None:
        await self.participants[pid].subscribe_answer(sdp)

    def stats(self) -> dict[str, Any]:
        stats = self.router.stats()
        consumers = [c for p in stats.participants for c in p.consumers]
        producers = [p for part in stats.participants for p in part.producers]
        return {
            "frames_forwarded": sum(c.frames_forwarded for c in consumers),
            "frames_dropped": sum(c.frames_dropped for c in consumers),
            "subscriber_keyframe_requests": sum(c.keyframe_requests for c in consumers),
            "producer_frames": sum(p.frames for p in producers),
            "producer_skipped_frames": sum(p.skipped_frames for p in producers),
            "producer_late_packets": sum(p.late_packets for p in producers),
            "plis_sent": sum(p.plis_sent for p in producers),
        }

    async def close(self) -> None:
        await self.router.close()
        if self.recorder is not None:
            await self.recorder.stop()
            shutil.rmtree(self.recorder.directory, ignore_errors=True)


class RelayRoom:
    """The baseline: aiortc's MediaRelay (decode once, encode per subscriber)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.waiting: list[str] = []

    async def join(self, pid: str) -> None:
        self.waiting.append(pid)
        await self._offer_waiting()

    async def publish(self, pid: str, sdp: str) -> str:
        pc = create_peer_connection(CONFIG)
        self.pcs[pid] = pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.source = track

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        answer = await set_local_description(pc, await pc.createAnswer(), CONFIG)
        self.waiting = [w for w in self.waiting if w != pid]
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._offer_waiting()))
        return answer

    async def _offer_waiting(self) -> None:
        if self.source is None:
            return
        waiting, self.waiting = self.waiting, []
        for pid in waiting:
            pc = create_peer_connection(CONFIG)
            self.pcs[pid] = pc
            pc.addTrack(self.relay.subscribe(self.source))
            sdp = await set_local_description(pc, await pc.createOffer(), CONFIG)
            self.channel.send({"op": "offer", "id": pid, "sdp": sdp, "streams": {}})

    async def subscribe_answer(self, pid: str, sdp: str) -> None:
        await self.pcs[pid].setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()


async def serve(mode: str) -> None:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = Channel(reader, writer)
        room: SfuRoom | RelayRoom
        if mode == "relay":
            room = RelayRoom(channel)
        else:
            room = SfuRoom(
                channel,
                "aiortc" if mode == "sfu-aiortc" else "direct",
                record=mode == "sfu-record",
                sync_receive=mode != "sfu-queued",
                native_send=mode != "sfu-python",
                native_fanout=mode not in ("sfu-per-consumer", "sfu-before"),
                native_receive=mode not in ("sfu-python", "sfu-python-receive", "sfu-before"),
                coalesce_control_reads=mode != "sfu-eager-reads",
                native_handoff=mode != "sfu-no-handoff",
            )
        tasks: set[asyncio.Task[None]] = set()

        async def run(message: dict[str, Any]) -> None:
            op, pid = message["op"], str(message.get("id"))
            try:
                if op == "join":
                    await room.join(pid)
                elif op == "publish":
                    answer = await room.publish(pid, message["sdp"])
                    channel.send({"op": "answer", "id": pid, "sdp": answer})
                elif op == "subscribe_answer":
                    await room.subscribe_answer(pid, message["sdp"])
                elif op == "stats":
                    channel.send({"op": "stats", "id": pid, "data": room.stats()})
            except Exception as exc:
                logging.exception("%s failed", op)
                channel.send({"op": "error", "id": pid, "message": f"{type(exc).__name__}: {exc}"})

        try:
            while (message := await channel.receive()) is not None:
                if message["op"] == "quit":
                    break
                task = asyncio.ensure_future(run(message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            await room.close()
            writer.close()
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    async with server:
        await done.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--mode",
        choices=(
            "sfu",
            "sfu-aiortc",
            "sfu-queued",
            "sfu-python",
            "sfu-python-receive",
            "sfu-eager-reads",
            "sfu-per-consumer",
            "sfu-before",
            "sfu-no-handoff",
            "sfu-record",
            "relay",
        ),
        default="sfu",
    )
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(serve(args.mode))


if __name__ == "__main__":
    main()

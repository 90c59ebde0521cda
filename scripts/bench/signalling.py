"""The load generator's end of `scripts/bench_server.py`'s JSON-lines channel, shared by
`scripts/bench_forwarding.py` and the side-by-side systems (`scripts/bench/systems.py`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from scripts.synthpeer.client import MediaClient


class Signalling:
    """The load generator's end of the bench server's JSON-lines channel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._answers: dict[str, asyncio.Future[str]] = {}
        self._stats: asyncio.Future[dict[str, Any]] | None = None
        self.clients: dict[str, MediaClient] = {}
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._pump = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int) -> Signalling:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def publish(self, pid: str, client: MediaClient) -> None:
        self.clients[pid] = client
        self.send({"op": "join", "id": pid})
        future = asyncio.get_running_loop().create_future()
        self._answers[pid] = future
        self.send({"op": "publish", "id": pid, "sdp": await client.publish_offer()})
        await client.publish_answer(await asyncio.wait_for(future, 20))

    async def server_stats(self) -> dict[str, Any]:
        """Counters of the room (drops, keyframe requests...); empty for the baseline."""
        self._stats = asyncio.get_running_loop().create_future()
        self.send({"op": "stats", "id": "bench"})
        try:
            return await asyncio.wait_for(self._stats, 10)
        finally:
            self._stats = None

    def subscribe(self, pid: str, client: MediaClient) -> None:
        self.clients[pid] = client
        self.send({"op": "join", "id": pid})

    async def _read(self) -> None:
        while line := await self._reader.readline():
            message = json.loads(line)
            op, pid = message["op"], message.get("id")
            if op == "answer":
                self._answers.pop(pid).set_result(message["sdp"])
            elif op == "offer":
                task = asyncio.ensure_future(self._answer(pid, message["sdp"], message["streams"]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif op == "stats" and self._stats is not None:
                self._stats.set_result(message["data"])
            elif op == "error":
                self.errors.append(f"{pid}: {message['message']}")

    async def _answer(self, pid: str, sdp: str, streams: dict[str, dict[str, str]]) -> None:
        answer = await self.clients[pid].subscribe_offer(sdp, streams)
        self.send({"op": "subscribe_answer", "id": pid, "sdp": answer})

    async def close(self) -> None:
        self.send({"op": "quit"})
        await self._writer.drain()
        self._pump.cancel()
        await asyncio.gather(self._pump, *self._tasks, return_exceptions=True)
        self._writer.close()

"""A synthetic participant that stays in the room as the page does: when its socket is
closed under it (its room's server stopped or died: close code 1012 or 1001, or the
connection dropped) or its media fails, it opens a new socket and joins again, backing
off between attempts, until it is stopped. In a cluster the join lands wherever the room
is placed then (docs/deploy.md, "A cluster")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp

from scripts.synthpeer.api_client import ApiFailure
from scripts.synthpeer.peer import MediaFailed, SyntheticPeer, is_media_error

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Waits between attempts (the last one repeats), like the page's reconnect."""
CHECK_SECONDS = 0.1


@dataclass(frozen=True)
class Rejoin:
    """One loss and the join that recovered from it (monotonic seconds)."""

    lost_at: float
    back_at: float
    """When its media was connected again."""
    attempts: int
    why: str

    @property
    def seconds(self) -> float:
        return self.back_at - self.lost_at


class StayInRoom:
    """Keeps `peer` joined (it must have joined once); `stop` before the peer leaves."""

    def __init__(self, peer: SyntheticPeer, *, publish: bool = True, timeout: float = 10.0):
        self.peer = peer
        self.publish = publish
        self.timeout = timeout
        self.rejoins: list[Rejoin] = []
        self.failures: list[str] = []
        """Why attempts failed (each was retried)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"stay-{self.peer.user_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def lost(self) -> str | None:
        """Why the peer is out of the room now, or None while it is in."""
        peer = self.peer
        socket, media = peer.socket, peer.media
        if socket is not None and socket.closed:
            return f"socket closed ({socket.close_code})"
        if socket is not None and any(
            f.get("event") == "ERROR" and is_media_error(f.get("data") or {})
            for f in socket.received
        ):
            return "media error"
        pcs = [pc for pc in (media.publish_pc, media.subscribe_pc) if pc] if media else []
        if any(pc.connectionState == "failed" for pc in pcs):
            return "media connection failed"
        return None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            why = self.lost()
            if why is None:
                continue
            lost_at = time.monotonic()
            log.info("peer %s lost the room (%s): joining again", self.peer.user_id, why)
            attempts = await self._join_again()
            self.rejoins.append(Rejoin(lost_at, time.monotonic(), attempts, why))

    async def _join_again(self) -> int:
        attempt = 0
        while True:
            attempt += 1
            await self.peer.close()  # a fresh socket: the old one's events are the old room's
            try:
                await self.peer.join(publish=self.publish, timeout=self.timeout)
                await self.peer.wait_connected(self.timeout)
                return attempt
            except (
                ApiFailure,
                MediaFailed,
                aiohttp.ClientError,
                ConnectionError,
                TimeoutError,
                OSError,
            ) as error:
                self.failures.append(f"{type(error).__name__}: {error}")
            delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
            await asyncio.sleep(delay)

"""A deadline for ICE + DTLS to come up on a peer connection.

aioice gives up on a candidate pair only after its STUN retransmissions run out (about a
minute with 7 tries from 0.5 s, doubling), so a client whose network blocks every path
(UDP dropped and no TURN) would sit in "connecting" that long. The media plane reports
such a connection as failed after `MediaConfig.ice_connect_timeout` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)


class ConnectDeadline:
    """Calls `on_expired(pc)` for each armed connection that is not connected in time."""

    def __init__(
        self, timeout: float | None, on_expired: Callable[[RTCPeerConnection], None]
    ) -> None:
        self._timeout = timeout
        self._on_expired = on_expired
        self._tasks: dict[RTCPeerConnection, asyncio.Task[None]] = {}

    def arm(self, pc: RTCPeerConnection | None) -> None:
        """Start the clock for `pc` (once per connection; no-op without a timeout)."""
        if self._timeout is None or pc is None or pc in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._watch(pc, self._timeout))
        self._tasks[pc] = task

    async def _watch(self, pc: RTCPeerConnection, timeout: float) -> None:
        connected = asyncio.Event()

        def changed() -> None:
            if pc.connectionState == "connected":
                connected.set()

        pc.on("connectionstatechange", changed)
        changed()
        try:
            await asyncio.wait_for(connected.wait(), timeout)
        except TimeoutError:
            if pc.connectionState != "closed":
                logger.warning(
                    "peer connection not connected after %.1f s (state %s): giving up",
                    timeout,
                    pc.connectionState,
                )
                self._on_expired(pc)
        finally:
            with contextlib.suppress(KeyError):
                pc.remove_listener("connectionstatechange", changed)

    async def close(self) -> None:
        """Stop every clock. Idempotent."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

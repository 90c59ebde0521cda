"""The server's received SRTP/SRTCP is handled in the socket callback (no queue/task hop),
in order, with real aiortc peers; and the coroutine driver behind it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from scripts.support.loopback import LOOPBACK, Room, wait_for
from sfu import aiortc_adapter
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.aiortc_adapter.receive_path import SrtpShortcut


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "queued"])
async def test_media_flows_in_order_either_way(sync: bool) -> None:
    room = Room(replace(LOOPBACK, sync_receive=sync))
    try:
        await room.join("teacher")
        await room.join("student", video=False)
        await wait_for(lambda: room.decoded("student", "teacher") >= 20, timeout=10)
        publisher = room.participants["teacher"]
        stats = publisher.stats().producers
        video = next(p for p in stats if p.kind == "video")
        # Nothing reordered or lost on loopback: no frame skipped, no late packet.
        assert video.skipped_frames == 0 and video.late_packets == 0
        for pc in (publisher.publish_pc, room.participants["student"].subscribe_pc):
            assert pc is not None
            ((installed, media_first),) = adapter_testing.receive_paths(pc)  # bundled
            assert installed == sync
            assert media_first and all(f == sync for f in media_first)
        if sync and publisher.publish_pc is not None:
            # Installing twice changes nothing.
            assert aiortc_adapter.receive_media_synchronously(publisher.publish_pc) == 0
    finally:
        await room.close()


class FakeSrtp:
    def unprotect(self, data: bytes) -> bytes:
        return b"rtp:" + data

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return b"rtcp:" + data


class FakeDtls:
    """Just the DTLS transport surface the shortcut touches (pure-logic test)."""

    def __init__(self) -> None:
        self._rx_srtp: FakeSrtp | None = None
        self.handled: list[bytes] = []

    def key(self) -> None:
        """The handshake is done: SRTP can be unprotected."""
        self._rx_srtp = FakeSrtp()

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self.handled.append(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.handled.append(data)


async def test_the_shortcut_keeps_order_and_leaves_dtls_to_the_queue() -> None:
    dtls = FakeDtls()
    pending: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    shortcut = SrtpShortcut(
        dtls,  # type: ignore[arg-type]
        lambda data, component: pending.put_nowait((data, component)),
        pending,
        aiortc_adapter.ControlReads.of(asyncio.get_running_loop()),
    )
    rtp = bytes([0x80, 96]) + bytes(10)
    rtcp = bytes([0x80, 200]) + bytes(6)
    shortcut(rtp, 1)  # not keyed yet: queued
    dtls.key()
    shortcut(rtp + b"2", 1)  # keyed, but something is pending: behind it
    assert dtls.handled == []
    queued = [pending.get_nowait()[0] for _ in range(pending.qsize())]
    assert queued == [rtp, rtp + b"2"]
    shortcut(rtp + b"3", 1)
    shortcut(rtcp, 1)
    shortcut(bytes([22, 254]) + bytes(11), 1)  # a DTLS record still takes the queue
    assert dtls.handled == [b"rtp:" + rtp + b"3", b"rtcp:" + rtcp]
    assert pending.qsize() == 1


async def test_a_coroutine_that_has_to_wait_is_finished_like_a_task() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[int] = loop.create_future()
    steps: list[object] = []

    async def handler() -> None:
        steps.append("start")
        steps.append(await gate)
        await asyncio.sleep(0)
        steps.append("end")

    aiortc_adapter.run_to_completion(handler())
    assert steps == ["start"]
    gate.set_result(7)
    await asyncio.sleep(0.01)
    assert steps == ["start", 7, "end"]

    async def immediate() -> None:
        steps.append("now")

    aiortc_adapter.run_to_completion(immediate())
    assert steps[-1] == "now"


async def test_a_failing_handler_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    async def broken_later() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("later")

    with caplog.at_level(logging.ERROR, logger="sfu.aiortc_adapter.receive_path"):
        aiortc_adapter.run_to_completion(broken())
        aiortc_adapter.run_to_completion(broken_later())
        await asyncio.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("handling a received packet failed") == 2

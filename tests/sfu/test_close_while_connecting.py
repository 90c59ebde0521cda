"""Leaving while a connection is still coming up leaves no un-retrieved task error behind.

aiortc connects (ICE, then DTLS, transceiver after transceiver) in a task that
`setLocalDescription` / `setRemoteDescription` start and nothing awaits. A participant
who leaves mid-handshake closes the connection under that task: the DTLS handshake fails,
the next transceiver's `RTCIceTransport.start()` raises "RTCIceTransport is closed", and
asyncio logs "Task exception was never retrieved" once the task is collected (seen under
``classroom-loadtest --churn``). Whether the handshake fails before aioice has finished
tearing the transport down is a matter of a few event loop iterations; `HeldHandshake`
makes it certain: it holds the handshake at its first read and fails that read as soon as
the ICE transport is closed, as a closing connection does.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import RTCIceTransport, RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from scripts.support.loopback import LOOPBACK, Room, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack
from sfu import create_peer_connection, set_local_description
from sfu.aiortc_adapter import testing as adapter_testing

ADAPTER_LOGGER = "sfu.aiortc_adapter.peer_connection"
QUIET = "peer connection closed while connecting"


class HeldHandshake:
    """Holds the DTLS handshake of `pc` at its first read; fails that read once `pc`'s
    ICE transport is closed."""

    def __init__(self, pc: RTCPeerConnection | None) -> None:
        assert pc is not None
        self._reading = asyncio.Event()
        self._ice_closed = asyncio.Event()
        transports = {t.receiver.transport.transport for t in pc.getTransceivers()}
        assert len(transports) == 1, "max-bundle: one transport"
        ice: RTCIceTransport = transports.pop()

        def state_changed() -> None:
            if ice.state == "closed":
                self._ice_closed.set()

        ice.on("statechange", state_changed)
        assert adapter_testing.wrap_receive(pc, self._wrap) == 1

    def _wrap(self, receive: Callable[[], Any]) -> Callable[[], Any]:
        async def held() -> bytes:
            if not self._reading.is_set():
                await receive()  # the peer's first flight: never handed to DTLS
                self._reading.set()
            # DTLS reads with a timeout and retransmits: a later read waits here too.
            await self._ice_closed.wait()
            raise ConnectionError("the ICE transport is closed")

        return held

    async def reading(self) -> None:
        """Wait until the handshake is under way and held."""
        await asyncio.wait_for(self._reading.wait(), timeout=5)


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Everything the event loop reports (e.g. "Task exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
    finally:
        loop.set_exception_handler(previous)


async def reported(errors: list[dict[str, Any]]) -> list[str]:
    """What the loop reported once every other task ended and garbage was collected."""
    current = asyncio.current_task()
    for _ in range(100):
        if all(t is current or t.done() for t in asyncio.all_tasks()):
            break
        await asyncio.sleep(0.02)
    gc.collect()  # a task reports an exception nobody retrieved when it is collected
    await asyncio.sleep(0)
    return [f"{c.get('message')}: {c.get('exception')!r}" for c in errors]


def quiet_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    records = [r for r in caplog.records if r.name == ADAPTER_LOGGER]
    assert not [r for r in records if r.levelno >= logging.WARNING], records
    return [r for r in records if r.getMessage().startswith(QUIET)]


async def publishing(room: Room, name: str) -> tuple[MediaClient, str]:
    """A participant whose publish offer is answered (the client has not applied it)."""
    participant = room.add_participant(name, {"role": "student"})
    client = MediaClient(room.config, video=room.clip, audio=ToneAudioTrack())
    room.clients[name] = client
    return client, await participant.publish(await client.publish_offer())


async def test_a_participant_leaving_while_its_publish_connection_connects(
    room: Room, loop_errors: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=ADAPTER_LOGGER)
    client, answer = await publishing(room, "student")
    participant = room.participants["student"]
    held = HeldHandshake(participant.publish_pc)
    await client.publish_answer(answer)
    await held.reading()
    await room.leave("student")  # the server side closes first
    await room.close()
    assert await reported(loop_errors) == []
    assert quiet_records(caplog), "the close did not interrupt the handshake"


async def test_a_client_leaving_while_its_publish_connection_connects(
    room: Room, loop_errors: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=ADAPTER_LOGGER)
    client, answer = await publishing(room, "student")
    held = HeldHandshake(client.publish_pc)
    await client.publish_answer(answer)
    await held.reading()
    await room.clients.pop("student").close()
    await room.participants.pop("student").close()
    await room.close()
    assert await reported(loop_errors) == []
    assert quiet_records(caplog), "the close did not interrupt the handshake"


@pytest.mark.parametrize("renegotiation", ["answered", "outstanding"])
async def test_leaving_during_a_subscribe_renegotiation_while_connecting(
    room: Room,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    renegotiation: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger=ADAPTER_LOGGER)
    room.answer_offers = False  # the test answers the subscribe offers itself
    await room.join("teacher")
    student = await room.join("student", video=False, audio=False)
    participant = room.participants["student"]
    await wait_for(lambda: "student" in room.events.offers, what="the subscribe offer")
    offer, streams = room.events.offers.pop("student")
    held = HeldHandshake(participant.subscribe_pc)
    await participant.subscribe_answer(await student.subscribe_offer(offer, streams))
    await held.reading()

    # Another publisher joins while the subscribe connection is still connecting.
    await room.join("teacher2")
    await wait_for(lambda: "student" in room.events.offers, what="the renegotiation offer")
    offer, streams = room.events.offers.pop("student")
    if renegotiation == "answered":
        await participant.subscribe_answer(await student.subscribe_offer(offer, streams))
    assert participant.subscribe_pc is not None
    assert participant.subscribe_pc.connectionState == "connecting"
    await room.leave("student")
    await room.close()
    assert await reported(loop_errors) == []
    assert quiet_records(caplog), "the close did not interrupt the handshake"


async def test_errors_of_a_connection_still_open_are_logged(
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(self: RTCIceTransport, remote: object) -> None:
        raise InvalidStateError("RTCIceTransport is closed")

    monkeypatch.setattr(RTCIceTransport, "start", refuse)
    offerer, answerer = create_peer_connection(LOOPBACK), create_peer_connection(LOOPBACK)
    try:
        offerer.addTransceiver("audio", direction="sendonly")
        await set_local_description(offerer, await offerer.createOffer(), LOOPBACK)
        await answerer.setRemoteDescription(offerer.localDescription)
        await set_local_description(answerer, await answerer.createAnswer(), LOOPBACK)
        await offerer.setRemoteDescription(answerer.localDescription)
        await wait_for(
            lambda: len([r for r in caplog.records if r.levelno == logging.ERROR]) >= 2,
            what="both connect failures logged",
        )
    finally:
        await offerer.close()
        await answerer.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert {r.name for r in errors} == {ADAPTER_LOGGER}
    assert all(r.exc_info and isinstance(r.exc_info[1], InvalidStateError) for r in errors)
    assert await reported(loop_errors) == []

"""Fixtures of the tests that drive synthetic peers through a real server's room: a
server on SQLite with media on loopback, peers that publish the synthetic clip and
tone and decode what they receive, and a class with an active session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from api.config import Settings
from scripts.synthpeer.api_client import Account
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from scripts.synthpeer.sink import DecodeMode
from sfu import MediaConfig

from .conftest import Classroom, RunningServer, ServerFactory

PeerFactory = Callable[..., Awaitable[SyntheticPeer]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite only here: media tests exercise the room, not the store."""
    return Settings(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", ice_addresses=("127.0.0.1",)
    )


@pytest.fixture
async def media_server(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(settings)


@pytest.fixture
async def peers(media_server: RunningServer) -> AsyncIterator[PeerFactory]:
    made: list[SyntheticPeer] = []

    async def make(
        account: Account,
        *,
        publish: bool = True,
        decode: DecodeMode = "all",
        class_id: str | None = None,
        join: bool = True,
    ) -> SyntheticPeer:
        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config,
                video=vp8_clip() if publish else None,
                audio=ToneAudioTrack() if publish else None,
                decode=decode,
            )

        peer = SyntheticPeer(media_server.api, account, media, class_id=class_id)
        made.append(peer)
        if join:
            await peer.join(publish=publish)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def live_classroom(server: RunningServer, students: int = 2) -> Classroom:
    room = await server.classroom(students=students)
    await server.api.start_session(room.teacher, room.class_id)
    return room


async def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)

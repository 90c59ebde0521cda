"""Fixtures of the cluster tests: a real redis-server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from scripts.support.nx27017 import Nx27017Server, running_nx27017
from tests.redis_process import RedisProcess


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[Nx27017Server]:
    with running_nx27017(tmp_path / "nx") as server:
        yield server

"""Cluster nodes for the tests: ``python -m api`` processes on one redis-server and one
nx-27017, signing tokens with one key, and what the tests ask of them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from api.auth.keys import KEY_FILE, load_or_create_signing_key
from scripts.support.nx27017 import Nx27017Server
from tests.redis_process import RedisProcess
from tests.server_process import ServerProcess

TTL = 1.5


def node(
    tmp_path: Path,
    name: str,
    redis: RedisProcess,
    mongo: Nx27017Server,
    ice_address: str = "127.0.0.1",
    drain_seconds: float = 1.0,
) -> ServerProcess:
    key = tmp_path / KEY_FILE
    if not key.exists():  # the one every node signs tokens with
        load_or_create_signing_key(tmp_path)
    return ServerProcess(
        {
            "JWT_SIGNING_KEY_FILE": str(key),
            "DATA_DIR": str(tmp_path / name),
            "MONGODB_URI": mongo.uri,
            "REDIS_URL": redis.url,
            "NODE_ID": name,
            "NODE_HEARTBEAT_SECONDS": str(TTL / 3),
            "NODE_TTL_SECONDS": str(TTL),
            "ICE_ADDRESSES": ice_address,
            "NODE_DRAIN_SECONDS": str(drain_seconds),
            "PASSWORD_HASH_COST": "10",
        },
        tmp_path / f"{name}.log",
    )


async def health(server: ServerProcess) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url + "/health") as response,
    ):
        body: dict[str, Any] = (await response.json())["data"]
        return body


async def seen_by(server: ServerProcess) -> list[str]:
    return [n["nodeId"] for n in (await health(server))["cluster"]["nodes"]]


async def until(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} within {timeout:g} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started

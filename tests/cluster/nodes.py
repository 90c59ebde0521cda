"""Cluster nodes for the tests: ``python -m api`` processes on one redis-server and one
nx-27017, signing tokens with one key, and what the tests ask of them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from api.auth.keys import KEY_FILE, load_or_create_signing_key
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import Account, ClassroomApi
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


@contextlib.asynccontextmanager
async def running(servers: dict[str, ServerProcess]) -> AsyncIterator[dict[str, ServerProcess]]:
    """Start every node and wait until each sees all of them; stop them all after."""
    try:
        for server in servers.values():
            await server.start()

        async def all_seen() -> bool:
            return all([await seen_by(s) == sorted(servers) for s in servers.values()])

        await until(all_seen, 5, "every node sees all of them")
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@dataclass(frozen=True)
class LiveClass:
    """A teacher's class with one student enrolled, its session started."""

    teacher: Account
    student: Account
    class_id: str
    session_id: str


async def live_class(api: ClassroomApi, name: str) -> LiveClass:
    teacher = await api.register("T", "t@school.test", "teacher")
    student = await api.register("S", "s@school.test", "student")
    class_id = (await api.create_class(teacher, name))["_id"]
    await api.enrol(teacher, class_id, student.id)
    session = await api.start_session(teacher, class_id)
    return LiveClass(teacher, student, class_id, session["sessionId"])

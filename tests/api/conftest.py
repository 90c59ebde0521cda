"""A real server on a loopback port per test, and helpers to populate it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.config import Settings
from api.services import SERVICES, Services
from scripts.support.nx27017 import Nx27017Server
from scripts.synthpeer.api_client import Account, ClassroomApi

_emails = itertools.count(1)


@dataclass
class Classroom:
    """A teacher, a class and its enrolled students, ready for a session."""

    teacher: Account
    class_id: str
    students: list[Account]


@dataclass
class RunningServer:
    """A started server, a REST/WS client for it, and its services for white-box checks."""

    api: ClassroomApi
    settings: Settings
    app: web.Application

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    async def account(self, role: str, name: str | None = None) -> Account:
        number = next(_emails)
        return await self.api.register(
            name or f"{role} {number}", f"{role}{number}@school.test", role
        )

    async def classroom(self, students: int = 2) -> Classroom:
        teacher = await self.account("teacher")
        cls = await self.api.create_class(teacher, "Physics")
        enrolled = []
        for _ in range(students):
            student = await self.account("student")
            await self.api.enrol(teacher, cls["_id"], student.id)
            enrolled.append(student)
        return Classroom(teacher, cls["_id"], enrolled)


@pytest.fixture(params=["sqlite", "nx27017"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Every API test runs on the embedded store and on MongoDB's wire protocol."""
    base = Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    if request.param == "sqlite":
        return base
    server: Nx27017Server = request.getfixturevalue("nx27017_server")
    return replace(base, mongodb_uri=server.uri, mongodb_db=f"api_{uuid.uuid4().hex[:12]}")


ServerFactory = Callable[[Settings], Awaitable[RunningServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start servers for given settings; all are stopped at the end of the test."""
    started: list[tuple[TestServer, ClassroomApi]] = []

    async def start(settings: Settings) -> RunningServer:
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        api = ClassroomApi(str(server.make_url("/")))
        started.append((server, api))
        return RunningServer(api, replace(settings, port=server.port or 0), server.app)

    yield start
    for server, api in reversed(started):
        await api.close()
        await server.close()


@pytest.fixture
async def server(start_server: ServerFactory, settings: Settings) -> RunningServer:
    return await start_server(settings)

"""Fixtures of the network tests: namespaces, coturn, a classroom server, peers.

Layout (both namespaces made per test, deleted after it)::

    server namespace  10.66.0.1  classroom server (in this process), coturn, the teacher
          | veth
    student namespace 10.66.0.2  the student (child process or Chromium); nftables drops
                                 all UDP and allows TCP to the server's web and TURN ports

The test process itself runs inside the server namespace while a test runs
(`netns.entered`), so nothing it starts touches the host's network.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.config import Settings
from api.ice_settings import IceSettings
from scripts.coturn_local import TURNSERVER, CoturnConfig, LocalCoturn, free_port
from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig
from tests.network import netns
from tests.network.tls import make_server_certificate
from tests.server_process import REPO

SERVER = "10.66.0.1"
STUDENT = "10.66.0.2"
_emails = itertools.count(1)


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if netns.available() and TURNSERVER.exists():
        return
    skip = pytest.mark.skip(reason="needs root, iproute2, nftables and coturn (turnserver)")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@dataclass
class Network:
    """The two namespaces of a test and how the student's side is restricted."""

    server: netns.Namespace
    student: netns.Namespace
    server_address: str = SERVER
    student_address: str = STUDENT


@pytest.fixture
def network() -> Iterator[Network]:
    server = netns.Namespace.create("srv")
    student = netns.Namespace.create("stu")
    try:
        netns.link(server, SERVER, student, STUDENT)
        with netns.entered(server):
            yield Network(server, student)
    finally:
        student.delete()
        server.delete()


@pytest.fixture
def coturn(network: Network, tmp_path: Path) -> Iterator[LocalCoturn]:
    """coturn in the server namespace, TCP and UDP on a free port of the server address."""
    config = CoturnConfig(
        listen_ip=SERVER,
        port=free_port(SERVER),
        min_port=50000,
        max_port=50199,
        allow_loopback_peers=False,  # the peer is the server's veth address, not loopback
    )
    with LocalCoturn(config, tmp_path / "coturn") as turn:
        yield turn


@dataclass
class TlsCoturn:
    """coturn also listening for TURN over TLS, and the CA that signed its certificate."""

    turn: LocalCoturn
    ca_file: Path


@pytest.fixture
def coturn_tls(network: Network, tmp_path: Path) -> Iterator[TlsCoturn]:
    """coturn in the server namespace with a TLS port too (``turns:``), its certificate
    for the server address signed by a throwaway CA."""
    ca_file, cert, key = make_server_certificate(tmp_path / "tls", SERVER)
    config = CoturnConfig(
        listen_ip=SERVER,
        port=free_port(SERVER),
        min_port=50200,
        max_port=50399,
        allow_loopback_peers=False,
        tls_port=free_port(SERVER),
        tls_cert=cert,
        tls_key=key,
    )
    with LocalCoturn(config, tmp_path / "coturn") as turn:
        yield TlsCoturn(turn, ca_file)


@dataclass
class Classroom:
    """A running server, its API client, and a class with a live session."""

    api: ClassroomApi
    base_url: str
    port: int
    teacher: Account
    student: Account
    class_id: str
    app: web.Application
    peers: list[SyntheticPeer] = field(default_factory=list)

    async def teacher_peer(self) -> SyntheticPeer:
        """The teacher joins from the server namespace and publishes audio and video."""

        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(config, video=vp8_clip(60), audio=ToneAudioTrack(), decode="all")

        peer = SyntheticPeer(
            self.api, self.teacher, media, class_id=self.class_id, host_addresses=(SERVER,)
        )
        self.peers.append(peer)
        await peer.join(publish=True)
        return peer


ClassroomFactory = Callable[[IceSettings], Awaitable[Classroom]]


@pytest.fixture
async def classroom(network: Network, tmp_path: Path) -> AsyncIterator[ClassroomFactory]:
    """Start a classroom server (in this process, in the server namespace) with the
    given ICE settings, and set up a teacher, a student and a live class on it."""
    started: list[tuple[TestServer, Classroom]] = []

    async def start(ice: IceSettings) -> Classroom:
        settings = Settings(
            host=SERVER,
            data_dir=tmp_path / f"data{len(started)}",
            ice_addresses=(SERVER,),
            ice=ice,
            # Cheap password hashes: on a loaded machine a default-cost login (scrypt
            # N=2^17) could outlast the page's 5 s wait, which is not what these test.
            password_hash_cost=10,
        )
        port = free_port(SERVER)
        server = TestServer(create_app(settings), host=SERVER, port=port)
        await server.start_server()
        base_url = f"http://{SERVER}:{port}"
        api = ClassroomApi(base_url)
        number = next(_emails)
        teacher = await api.register(f"Teacher {number}", f"t{number}@net.test", "teacher")
        student = await api.register(f"Student {number}", f"s{number}@net.test", "student")
        cls = await api.create_class(teacher, "Networks")
        await api.enrol(teacher, cls["_id"], student.id)
        await api.start_session(teacher, cls["_id"])
        room = Classroom(api, base_url, port, teacher, student, cls["_id"], server.app)
        started.append((server, room))
        return room

    yield start
    for server, room in reversed(started):
        for peer in room.peers:
            await peer.close()
        await room.api.close()
        await server.close()


@dataclass
class StudentProcess:
    """The student child process in the student namespace (`tests.network.student_peer`)."""

    process: asyncio.subprocess.Process

    async def result(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            stderr = await self.process.stderr.read() if self.process.stderr else b""
            raise AssertionError(f"student exited without a result: {stderr.decode()[-3000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    async def finish(self) -> None:
        """Let the student leave (a line on stdin), then make sure it is gone."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.process.stdin.write(b"leave\n")
                await self.process.stdin.drain()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()  # by PID: the student's python (ip netns exec execs it)
            await self.process.wait()


StudentFactory = Callable[..., Awaitable[StudentProcess]]


@pytest.fixture
async def student_process(network: Network) -> AsyncIterator[StudentFactory]:
    """Start the student in the restricted namespace; stopped by PID at the end."""
    started: list[StudentProcess] = []

    async def start(room: Classroom, **options: Any) -> StudentProcess:
        payload = {
            "baseUrl": room.base_url,
            "account": dataclasses.asdict(room.student),
            "classId": room.class_id,
            "teacherId": room.teacher.id,
            "hostAddress": STUDENT,
            **options,
        }
        process = await asyncio.create_subprocess_exec(
            *network.student.command(
                sys.executable, "-m", "tests.network.student_peer", json.dumps(payload)
            ),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        student = StudentProcess(process)
        started.append(student)
        return student

    yield start
    for student in started:
        await student.finish()


_TIMINGS: list[str] = []


@pytest.fixture
def timings() -> list[str]:
    """Lines appended here are repeated in the terminal summary of the run."""
    return _TIMINGS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TIMINGS:
        terminalreporter.section("restrictive networks: media timings")
        for line in _TIMINGS:
            terminalreporter.write_line(line)

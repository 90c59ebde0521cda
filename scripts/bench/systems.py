"""The systems under test, behind one small interface the load generator drives.

- `OurServer`: the real server (``python -m api``) and the class WebSocket protocol, with
  accounts, a class and a live session, exactly as browsers use it.
- `BenchServer`: `scripts/bench_server.py` (the other engineer's forwarding benchmark
  server) in mode ``sfu`` (our bare `sfu.Router`, no control plane) or ``relay``
  (aiortc's MediaRelay: decode once, encode per subscriber).
- `JanusVideoRoom`: Janus 1.1.2 VideoRoom through its HTTP API.

Each runs its server in its own process pinned to one core; `pid` is what is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from scripts.bench.janus import CLASS_ROOM, SINGLE_ROOM, JanusServer, JanusSession
from scripts.bench.signalling import Signalling
from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

ClientFactory = Callable[[MediaConfig], MediaClient]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: int | None) -> Callable[[], None]:
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return pin


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; by PID, only the process we started."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class System(ABC):
    """One system under test; a fresh server process per `start()`."""

    name: str
    supports_classroom = False

    @property
    @abstractmethod
    def pid(self) -> int: ...

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def publish(self, make: ClientFactory, name: str) -> MediaClient:
        """Join as a publisher; return once media is being accepted."""

    @abstractmethod
    async def subscribe(self, make: ClientFactory, name: str) -> MediaClient:
        """Join as a subscriber of the (single) publisher."""

    async def join_classroom(self, make: ClientFactory, name: str) -> MediaClient:
        """Classroom scenario: publish and receive everyone else."""
        raise NotImplementedError(f"{self.name} has no classroom scenario here")

    async def classroom_ready(self) -> None:  # noqa: B027 (an optional hook)
        """Called once every participant has joined (Janus subscribes then)."""

    def label(self, name: str) -> str:
        """How subscribers' counters name the publisher ``name`` (stream owner)."""
        return name

    @abstractmethod
    async def stop(self) -> None: ...


class OurServer(System):
    """``python -m api`` and the class WebSocket, like the browser page."""

    name = "ours"
    supports_classroom = True

    def __init__(self, *, cpu: int | None, address: str, client_address: str, data_dir: Path):
        self.cpu = cpu
        self.address = address
        self.client_address = client_address
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._api: ClassroomApi | None = None
        self._teacher: Account | None = None
        self._class_id: str | None = None
        self._students: list[Account] = []
        self._next_student = 0
        self._peers: list[SyntheticPeer] = []
        self._labels: dict[str, str] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def base_url(self) -> str:
        """The running server's HTTP address (after `start`)."""
        assert self._api is not None
        return self._api.base_url

    async def start(self) -> None:
        port = free_port()
        env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATA_DIR": str(self.data_dir),
            "ICE_ADDRESSES": self.address,
            "ROOM_MAX_PARTICIPANTS": "1000",
            "LOG_LEVEL": "WARNING",
            # The synthetic class signs up from one address before the measurement, which
            # neither throttling nor OWASP-cost hashes are about (they are tested).
            "AUTH_THROTTLE": "false",
            "PASSWORD_HASH_COST": "12",
        }
        env.pop("MONGODB_URI", None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=pinned(self.cpu),
            )
        # Every participant keeps a WebSocket open: no pool limit (aiohttp's default is 100).
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._api = ClassroomApi(f"http://127.0.0.1:{port}", self._http)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("our server exited; see " + str(self.data_dir / "server.log"))
            with contextlib.suppress(aiohttp.ClientError):
                status, _ = await self._api.request("GET", "/health")
                if status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("our server did not start")
            await asyncio.sleep(0.1)
        if self._teacher is None:
            self._teacher = await self._api.register(
                "Bench Teacher", "teacher@bench.test", "teacher"
            )
            created = await self._api.create_class(self._teacher, "Bench")
            self._class_id = str(created["_id"])
        await self._api.start_session(self._teacher, self._class_id or "")
        self._next_student = 0

    async def _student(self) -> Account:
        assert self._api is not None and self._teacher is not None and self._class_id
        if self._next_student == len(self._students):
            index = len(self._students)
            account = await self._api.register(
                f"Student {index}", f"student{index}@bench.test", "student"
            )
            await self._api.enrol(self._teacher, self._class_id, account.id)
            self._students.append(account)
        account = self._students[self._next_student]
        self._next_student += 1
        return account

    async def prepare_students(self, count: int) -> None:
        """Create accounts ahead of measurements (scrypt costs ~80 ms per account)."""
        while len(self._students) < count:
            await self._student()
        self._next_student = 0

    async def _join(
        self, account: Account, make: ClientFactory, name: str, publish: bool
    ) -> MediaClient:
        assert self._api is not None
        peer = SyntheticPeer(
            self._api,
            account,
            make,
            class_id=self._class_id,
            host_addresses=(self.client_address,),
        )
        self._peers.append(peer)
        self._labels[name] = account.id
        await peer.join(publish=publish, timeout=30)
        assert peer.media is not None
        return peer.media

    async def publish(self, make: ClientFactory, name: str) -> MediaClient:
        assert self._teacher is not None
        return await self._join(self._teacher, make, name, True)

    async def subscribe(self, make: ClientFactory, name: str) -> MediaClient:
        return await self._join(await self._student(), make, name, False)

    async def join_classroom(self, make: ClientFactory, name: str) -> MediaClient:
        account = self._teacher if not self._labels else await self._student()
        assert account is not None
        return await self._join(account, make, name, True)

    def label(self, name: str) -> str:
        return self._labels.get(name, name)

    async def stop(self) -> None:
        for peer in self._peers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.close(), 10)
        self._peers.clear()
        self._labels.clear()
        if self._api is not None and self._teacher is not None and self._class_id:
            with contextlib.suppress(Exception):
                await self._api.end_session(self._teacher, self._class_id)
        if self._http is not None:
            await self._http.close()
            self._http = None
        stop_process(self.process)


class BenchServer(System):
    """`scripts/bench_server.py` in one of its modes (its own JSON-lines signalling)."""

    def __init__(self, *, mode: str, cpu: int | None, name: str) -> None:
        self.mode = mode
        self.cpu = cpu
        self.name = name
        self.process: subprocess.Popen[str] | None = None
        self._signalling: Signalling | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        command = [sys.executable, "-m", "scripts.bench_server", "--mode", self.mode]
        if self.cpu is not None:
            command += ["--cpu", str(self.cpu)]
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, self.process.stdout.readline)
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench server did not start: {line!r}")
        self._signalling = await Signalling.connect(int(line.split()[1]))

    @staticmethod
    def _config() -> MediaConfig:
        # scripts/bench_server.py gathers on 127.0.0.1 only.
        return MediaConfig(host_addresses=("127.0.0.1",), stats_interval=None)

    async def publish(self, make: ClientFactory, name: str) -> MediaClient:
        assert self._signalling is not None
        client = make(self._config())
        await self._signalling.publish(name, client)
        return client

    async def subscribe(self, make: ClientFactory, name: str) -> MediaClient:
        assert self._signalling is not None
        client = make(self._config())
        self._signalling.subscribe(name, client)
        return client

    async def stop(self) -> None:
        if self._signalling is not None:
            clients = list(self._signalling.clients.values())
            with contextlib.suppress(Exception):
                await self._signalling.close()
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
            self._signalling = None
        if self.process is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 15)
            except subprocess.TimeoutExpired:
                stop_process(self.process)


class JanusVideoRoom(System):
    """Janus VideoRoom: publisher handle(s), one subscriber handle per subscriber."""

    supports_classroom = True

    def __init__(
        self,
        *,
        cpu: int | None,
        interface: str,
        address: str,
        client_address: str,
        event_loops: int | None,
        name: str,
    ) -> None:
        self.name = name
        self.client_address = client_address
        self.server = JanusServer(
            interface=interface, address=address, cpu=cpu, event_loops=event_loops
        )
        self._http: aiohttp.ClientSession | None = None
        self._session: JanusSession | None = None
        self._feeds: dict[str, int] = {}
        self._clients: dict[str, MediaClient] = {}
        self._room = SINGLE_ROOM

    @property
    def pid(self) -> int:
        return self.server.pid

    def _config(self) -> MediaConfig:
        return MediaConfig(host_addresses=(self.client_address,), stats_interval=None)

    async def start(self) -> None:
        self.server.http_port = free_port()
        await self.server.start()
        self._http = aiohttp.ClientSession()
        self._session = JanusSession(self._http, self.server.url)
        await self._session.create()
        self._room = SINGLE_ROOM

    async def _publish(self, make: ClientFactory, name: str) -> MediaClient:
        session = self._session
        assert session is not None
        client = make(self._config())
        self._clients[name] = client
        handle = await session.attach()
        joined, _ = await session.message(
            handle, {"request": "join", "room": self._room, "ptype": "publisher", "display": name}
        )
        self._feeds[name] = int(joined["id"])
        offer = await client.publish_offer()
        _, jsep = await session.message(
            handle,
            {"request": "publish"},
            {"type": "offer", "sdp": offer, "trickle": False},
        )
        assert jsep is not None
        await client.publish_answer(str(jsep["sdp"]))
        await session.wait_for(handle, "webrtcup")
        return client

    async def _subscribe(self, client: MediaClient, feeds: list[int]) -> None:
        session = self._session
        assert session is not None
        handle = await session.attach()
        attached, jsep = await session.message(
            handle,
            {
                "request": "join",
                "room": self._room,
                "ptype": "subscriber",
                "streams": [{"feed": feed} for feed in feeds],
            },
        )
        assert jsep is not None
        offer, owners = self._relabel(str(jsep["sdp"]), attached)
        answer = await client.subscribe_offer(offer, owners)
        await session.message(
            handle, {"request": "start"}, {"type": "answer", "sdp": answer, "trickle": False}
        )

    async def publish(self, make: ClientFactory, name: str) -> MediaClient:
        return await self._publish(make, name)

    async def subscribe(self, make: ClientFactory, name: str) -> MediaClient:
        client = make(self._config())
        self._clients[name] = client
        await self._subscribe(client, list(self._feeds.values()))
        return client

    async def join_classroom(self, make: ClientFactory, name: str) -> MediaClient:
        self._room = CLASS_ROOM
        return await self._publish(make, name)

    async def classroom_ready(self) -> None:
        await asyncio.gather(
            *(
                self._subscribe(client, [f for n, f in self._feeds.items() if n != name])
                for name, client in self._clients.items()
            )
        )

    def _relabel(
        self, offer: str, attached: dict[str, Any]
    ) -> tuple[str, dict[str, dict[str, str]]]:
        """Give each m-section of a subscriber offer the publisher's name as msid stream id.

        Janus labels every stream of a multistream subscription with the same msid, so the
        client could not tell them apart; the ``attached`` event maps mid -> feed. Only the
        client's copy of the offer changes (its answer carries no msid)."""
        owner_of_feed = {feed: name for name, feed in self._feeds.items()}
        owner_of_mid = {
            str(stream.get("mid")): owner_of_feed[stream["feed_id"]]
            for stream in attached.get("streams", [])
            if stream.get("feed_id") in owner_of_feed
        }
        head, *sections = offer.split("\r\nm=")
        relabelled = [head]
        for section in sections:
            lines = section.split("\r\n")
            mid = next((ln[6:] for ln in lines if ln.startswith("a=mid:")), None)
            owner = owner_of_mid.get(mid or "")
            if owner is not None:
                lines = [
                    f"a=msid:{owner} {ln.split()[1] if len(ln.split()) > 1 else owner}"
                    if ln.startswith("a=msid:")
                    else ln
                    for ln in lines
                ]
            relabelled.append("\r\n".join(lines))
        labels = {owner: {"userId": owner} for owner in owner_of_mid.values()}
        return "\r\nm=".join(relabelled), labels

    async def stop(self) -> None:
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
        self._feeds.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        self.server.stop()

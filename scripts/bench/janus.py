"""Janus 1.1.2 (Debian ``janus``) for the benchmark: config, process, and its HTTP API.

`JanusServer` writes a minimal config to a temp dir (only the VideoRoom plugin and the
plain-HTTP transport; ``full_trickle = false``, ``ignore_mdns = true``, candidates only on
the benchmark's veth interface, an RTP port range) and runs ``janus -F <dir> -C <dir>/janus.jcfg``
pinned to one core. Keys not written keep Janus' defaults, as in the Debian files (where
they are commented out).

`JanusSession` speaks the HTTP API: ``create``, ``attach`` (VideoRoom), ``message`` whose
replies come back on the long poll as ``event`` with the same ``transaction``, and
``webrtcup`` per handle. aiortc never trickles: every ``jsep`` carries ``"trickle": false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

JANUS = "/usr/bin/janus"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
VIDEOROOM = "janus.plugin.videoroom"
SINGLE_ROOM = 1001
"""One publisher (the 1 -> N scenario)."""
CLASS_ROOM = 1002
"""Up to 64 publishers (the classroom scenario)."""


def _others(folder: str, keep: str) -> str:
    names = sorted(p.name for p in (LIB / folder).glob("*.so") if p.name != keep)
    return ",".join(names)


def janus_config(
    folder: Path, *, interface: str, address: str, http_port: int, event_loops: int | None
) -> None:
    """Write janus.jcfg, the HTTP transport and the VideoRoom configs into ``folder``."""
    loops = f"\tevent_loops = {event_loops}\n" if event_loops else ""
    (folder / "janus.jcfg").write_text(
        "general: {\n"
        f'\tconfigs_folder = "{folder}"\n'
        f'\tplugins_folder = "{LIB / "plugins"}"\n'
        f'\ttransports_folder = "{LIB / "transports"}"\n'
        f'\tevents_folder = "{LIB / "events"}"\n'
        f'\tloggers_folder = "{LIB / "loggers"}"\n'
        f'\tinterface = "{address}"\n'
        "\tdebug_level = 3\n"
        '\tadmin_secret = "bench"\n'
        "\tsession_timeout = 120\n"
        f"{loops}"
        "}\n"
        "media: {\n"
        '\trtp_port_range = "20000-40000"\n'
        "}\n"
        "nat: {\n"
        "\tnice_debug = false\n"
        "\tfull_trickle = false\n"
        "\tignore_mdns = true\n"
        f'\tice_enforce_list = "{interface}"\n'
        "}\n"
        "plugins: {\n"
        f'\tdisable = "{_others("plugins", "libjanus_videoroom.so")}"\n'
        "}\n"
        "transports: {\n"
        f'\tdisable = "{_others("transports", "libjanus_http.so")}"\n'
        "}\n"
        "loggers: {\n"
        f'\tdisable = "{_others("loggers", "")}"\n'
        "}\n"
        "events: {\n"
        "\tbroadcast = false\n"
        f'\tdisable = "{_others("events", "")}"\n'
        "}\n"
    )
    (folder / "janus.transport.http.jcfg").write_text(
        "general: {\n"
        '\tjson = "plain"\n'
        '\tbase_path = "/janus"\n'
        "\thttp = true\n"
        f"\tport = {http_port}\n"
        '\tip = "127.0.0.1"\n'
        "\thttps = false\n"
        "}\n"
        "admin: {\n"
        '\tadmin_base_path = "/admin"\n'
        "\tadmin_http = true\n"
        f"\tadmin_port = {http_port + 1}\n"
        '\tadmin_ip = "127.0.0.1"\n'
        "\tadmin_https = false\n"
        "}\n"
    )

    def room(number: int, publishers: int) -> str:
        return (
            f"room-{number}: {{\n"
            f'\tdescription = "bench {number}"\n'
            f"\tpublishers = {publishers}\n"
            "\tbitrate = 0\n"
            "\tfir_freq = 0\n"
            '\tvideocodec = "vp8"\n'
            '\taudiocodec = "opus"\n'
            "\trecord = false\n"
            "}\n"
        )

    (folder / "janus.plugin.videoroom.jcfg").write_text(
        "general: {\n}\n" + room(SINGLE_ROOM, 1) + room(CLASS_ROOM, 64)
    )


class JanusServer:
    """One ``janus`` process with its own config dir, pinned to ``cpu``."""

    def __init__(
        self,
        *,
        interface: str,
        address: str,
        cpu: int | None,
        http_port: int = 8088,
        event_loops: int | None = None,
    ) -> None:
        self.interface = interface
        self.address = address
        self.cpu = cpu
        self.http_port = http_port
        self.event_loops = event_loops
        self.process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/janus"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 20.0) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="janus-bench-")
        folder = Path(self._folder.name)
        janus_config(
            folder,
            interface=self.interface,
            address=self.address,
            http_port=self.http_port,
            event_loops=self.event_loops,
        )
        cpu = self.cpu

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        log = (folder / "janus.log").open("wb")
        self.process = subprocess.Popen(
            [JANUS, "-F", str(folder), "-C", str(folder / "janus.jcfg")],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pin,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"janus exited: {self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/info") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"janus did not answer: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        if self._folder is None:
            return ""
        path = Path(self._folder.name) / "janus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class JanusError(Exception):
    """Janus answered ``error`` (or its plugin did)."""


class JanusSession:
    """One Janus session over HTTP: handles, plugin messages, events on a long poll."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self.id: int | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self._arrived = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": body.get("transaction") or secrets.token_hex(6)}
        async with self._http.post(self._url + path, json=body) as response:
            reply: dict[str, Any] = await response.json(content_type=None)
        if reply.get("janus") == "error":
            raise JanusError(str(reply.get("error")))
        return reply

    async def create(self) -> None:
        reply = await self._post("", {"janus": "create"})
        self.id = int(reply["data"]["id"])
        self._poller = asyncio.create_task(self._poll())

    async def attach(self) -> int:
        reply = await self._post(f"/{self.id}", {"janus": "attach", "plugin": VIDEOROOM})
        return int(reply["data"]["id"])

    async def message(
        self,
        handle: int,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Send a plugin request; return (plugin data, jsep) of its reply event."""
        transaction = secrets.token_hex(6)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        request: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            request["jsep"] = jsep
        try:
            reply = await self._post(f"/{self.id}/{handle}", request)
            if reply.get("janus") == "success":  # synchronous plugin request
                event = reply
            else:
                event = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(transaction, None)
        data = dict((event.get("plugindata") or {}).get("data") or {})
        if "error" in data:
            raise JanusError(f"{data.get('error_code')}: {data['error']}")
        return data, event.get("jsep")

    async def wait_for(self, handle: int, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first ``janus: kind`` event (e.g. ``webrtcup``) of a handle."""
        async with asyncio.timeout(timeout):
            while True:
                for index, event in enumerate(self._events[handle]):
                    if event.get("janus") == kind:
                        return self._events[handle].pop(index)
                self._arrived.clear()
                await self._arrived.wait()

    async def _poll(self) -> None:
        while True:
            try:
                async with self._http.get(
                    f"{self._url}/{self.id}", params={"maxev": "50", "rid": str(time.time())}
                ) as response:
                    reply = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            for event in reply if isinstance(reply, list) else [reply]:
                self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        transaction = event.get("transaction")
        future = self._pending.get(str(transaction)) if transaction else None
        if kind == "event" and future is not None and not future.done():
            future.set_result(event)
            return
        sender = event.get("sender")
        if isinstance(sender, int):
            self._events[sender].append(event)
            self._arrived.set()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.id is not None:
            with contextlib.suppress(aiohttp.ClientError, JanusError, TimeoutError):
                await self._post(f"/{self.id}", {"janus": "destroy"})
            self.id = None

"""Start and stop a real nx-27017 server (a MongoDB wire-protocol server on SQLite).

Used by the tests (tests/conftest.py) and the store benchmark (scripts/bench_store.py); it lives
here, not under tests/, so an installed ``scripts`` package can import it.

Each server gets a free loopback port, its own data directory, pid file and log file under
a directory the caller owns, and is stopped by its PID. Reusable from any test package::

    with running_nx27017(tmp_path_factory.mktemp("nx")) as server:
        client = AsyncMongoClient(server.uri)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

HOST = "127.0.0.1"
# The package has no __main__ module; this is what its console script runs.
_LAUNCH = "import sys, nx_27017; sys.exit(nx_27017.main())"


@dataclass(frozen=True)
class Nx27017Server:
    """A running nx-27017 process and where it keeps its files."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def uri(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "nx-27017.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "nx-27017.log"

    @property
    def output_file(self) -> Path:
        return self.workdir / "nx-27017.out"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now (the caller must tolerate a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def start_nx27017(workdir: Path, *, timeout: float = 20.0, attempts: int = 3) -> Nx27017Server:
    """Start a server whose files live in ``workdir`` and wait until it answers ``ping``.

    A port taken between choosing and binding makes the process exit; then another port is
    tried, up to ``attempts`` times.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    failure = "never started"
    for _ in range(attempts):
        server = _spawn(workdir, free_port())
        failure = _wait_until_ready(server, timeout)
        if not failure:
            return server
        stop_nx27017(server)
    raise RuntimeError(f"nx-27017 did not start in {workdir}: {failure}")


def stop_nx27017(server: Nx27017Server, *, timeout: float = 5.0) -> None:
    """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def restart_nx27017(server: Nx27017Server, *, timeout: float = 20.0) -> Nx27017Server:
    """The same server again after `stop_nx27017`: its port, its data (a store outage that
    ends, for clients that reconnect on their own)."""
    again = _spawn(server.workdir, server.port)
    failure = _wait_until_ready(again, timeout)
    if failure:
        stop_nx27017(again)
        raise RuntimeError(f"nx-27017 did not restart on port {server.port}: {failure}")
    return again


@contextlib.contextmanager
def running_nx27017(workdir: Path) -> Iterator[Nx27017Server]:
    """A started server for the duration of the ``with`` block."""
    server = start_nx27017(workdir)
    try:
        yield server
    finally:
        stop_nx27017(server)


def _spawn(workdir: Path, port: int) -> Nx27017Server:
    server_args = [
        "--host", HOST,
        "--port", str(port),
        "--data-dir", str(workdir / "data"),
        "--pid-file", str(workdir / "nx-27017.pid"),
        "--log-file", str(workdir / "nx-27017.log"),
    ]  # fmt: skip
    with open(workdir / "nx-27017.out", "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, *server_args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Nx27017Server(process=process, port=port, workdir=workdir)


def _wait_until_ready(server: Nx27017Server, timeout: float) -> str:
    """Empty once the server answers ``ping``; otherwise why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return f"exited with {server.process.returncode}: {_tail(server.output_file)}"
        client: MongoClient[dict[str, object]] = MongoClient(
            server.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250
        )
        try:
            client.admin.command("ping")
            return ""
        except PyMongoError:
            time.sleep(0.05)
        finally:
            client.close()
    return f"no answer to ping within {timeout} s: {_tail(server.output_file)}"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"

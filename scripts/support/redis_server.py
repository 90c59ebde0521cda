"""A real ``redis-server`` (Debian's package) as a child process on a free loopback port,
without persistence; stopped and restarted by its PID. The cluster's tests and its
benchmark run on it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisMissing(RuntimeError):
    """``redis-server`` is not installed here."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """``redis-server --port <p> --save "" --appendonly no``; `stop()` / `start()` keep
    the port, so clients reconnect to the same URL. `cpu`: pinned to that core."""

    def __init__(self, log_path: Path, *, cpu: int | None = None) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self.cpu = cpu
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RedisMissing(
                "redis-server is not installed (scripts/setup.sh --test installs it)"
            )
        cpu = self.cpu
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
            )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError(self.log_path.read_text()[-2000:]) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

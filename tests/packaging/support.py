"""What the packaging tests share: the checkout and copies of it, the project's version, a
clean environment, and a server process started from a given command (stdlib only)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", "*.so", ".*_cache", "data",
    "artifacts", "tests", "docs",
)  # fmt: skip


def copy_checkout(target: Path) -> Path:
    """The checkout's sources at `target`, so a build there leaves nothing in the checkout."""
    shutil.copytree(REPO, target, ignore=_NOT_SOURCE)
    return target


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    assert isinstance(version, str)
    return version


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment less what would point Python at the test virtualenv or
    the server at a MongoDB, plus `overrides`."""
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MONGODB_URI"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **overrides}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET (redirects followed)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status), response.read().decode()


def answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except (urllib.error.URLError, ConnectionError):
        return False


@contextmanager
def running_server(
    command: Sequence[str], *, port: int, cwd: Path, env: Mapping[str, str], log: Path
) -> Iterator[str]:
    """Start `command` (a classroom-sfu), wait until `/health` answers on `port`, yield the
    base URL; stop it by its PID (SIGTERM, then SIGKILL) however the block ends."""
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while not answers(f"{base}/health"):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

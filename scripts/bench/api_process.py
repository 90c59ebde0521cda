"""Our server (``python -m api``) as a process for the control-plane benchmarks: on a free
loopback port, on the embedded store in a temporary directory, pinned to a core, with a
REST/WS client; stopped by its PID when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from scripts.bench.systems import REPO, free_port, pinned
from scripts.synthpeer.api_client import ClassroomApi


@dataclass
class ApiProcess:
    """A started server: its process (for CPU times), data directory and client."""

    process: psutil.Process
    data_dir: Path
    api: ClassroomApi


@contextlib.asynccontextmanager
async def api_process(env: Mapping[str, str], *, cpu: int | None = 0) -> AsyncIterator[ApiProcess]:
    """Start the server with `env` over the defaults here and wait until it answers."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    full = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    full.pop("MONGODB_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=REPO,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pinned(cpu),
    )
    try:
        async with aiohttp.ClientSession() as http:
            api = ClassroomApi(f"http://127.0.0.1:{port}", http)
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError("the server exited before it answered")
                with contextlib.suppress(aiohttp.ClientError):
                    if (await api.request("GET", "/health"))[0] == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError("the server did not answer /health within 30 s")
            yield ApiProcess(psutil.Process(process.pid), data_dir, api)
    finally:
        process.terminate()
        process.wait(timeout=30)

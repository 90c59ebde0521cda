"""Run inside a fresh network namespace (``unshare -n``) by ``test_metrics.py``.

Gives the namespace a non-loopback address on a veth interface, starts real servers
bound to every address, scrapes ``/metrics`` from loopback and from that address, and
prints the statuses as JSON. A client connecting to 10.213.0.1 has that as its source
address, so the server sees a non-loopback peer without any traffic leaving the namespace.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

from tests.server_process import ServerProcess

ADDRESS = "10.213.0.1"


def _network() -> None:
    for command in (
        "ip link set lo up",
        "ip link add m0 type veth peer name m1",
        f"ip addr add {ADDRESS}/24 dev m0",
        "ip link set m0 up",
        "ip link set m1 up",
    ):
        subprocess.run(command.split(), check=True)


async def _status(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status


async def _probe(workdir: Path) -> dict[str, int]:
    results: dict[str, int] = {}
    for name, extra in (("open", {}), ("token", {"METRICS_TOKEN": "s3cret"})):
        server = ServerProcess(
            {"HOST": "0.0.0.0", "DATA_DIR": str(workdir / name), **extra},
            workdir / f"{name}.log",
        )
        await server.start()
        try:
            loopback = f"http://127.0.0.1:{server.port}/metrics"
            outside = f"http://{ADDRESS}:{server.port}/metrics"
            results[f"{name}_loopback"] = await _status(loopback)
            results[f"{name}_outside"] = await _status(outside)
            results[f"{name}_outside_with_token"] = await _status(outside, "s3cret")
        finally:
            server.stop()
    return results


def main() -> None:
    _network()
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(asyncio.run(_probe(Path(workdir)))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

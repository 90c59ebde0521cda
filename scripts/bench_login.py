"""Login latency and server CPU per login at scrypt costs, against ``python -m api``.

For each ``--costs`` (log2 N; default 14, the old cost, and 17, OWASP's and the default)
a fresh server signs one account up, then answers ``--logins`` (20) logins one after
another (wall-clock latency p50/p95 as a client sees it, and the server's CPU per login
from /proc of its PID), then ``--burst`` (10) logins at once (p95 and the slowest: at most
two hashes run at once, the rest queue). The server is pinned to the first core.

    .venv/bin/python -m scripts.bench_login [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from scripts.bench.api_process import api_process
from scripts.synthpeer.api_client import ClassroomApi

LOGIN = {"email": "ada@bench.test", "password": "correct horse battery"}


async def _login(api: ClassroomApi) -> float:
    started = time.perf_counter()
    status, _ = await api.request("POST", "/auth/login", body=LOGIN)
    if status != 200:
        raise RuntimeError(f"login answered {status}")
    return time.perf_counter() - started


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(cost: int, logins: int, burst: int) -> dict[str, Any]:
    # Throttling is not what is measured.
    env = {"PASSWORD_HASH_COST": str(cost), "AUTH_THROTTLE": "false"}
    async with api_process(env) as server:
        api = server.api
        body = {**LOGIN, "name": "Ada", "role": "student"}
        status, _ = await api.request("POST", "/auth/signup", body=body)
        if status != 201:
            raise RuntimeError(f"signup answered {status}")
        before = server.process.cpu_times()
        sequential = [await _login(api) for _ in range(logins)]
        after = server.process.cpu_times()
        at_once = await asyncio.gather(*(_login(api) for _ in range(burst)))
    cpu = (after.user - before.user) + (after.system - before.system)
    return {
        "cost": cost,
        "sequential_p50_ms": round(1000 * statistics.median(sequential), 1),
        "sequential_p95_ms": round(1000 * _quantile(sequential, 0.95), 1),
        "server_cpu_ms_per_login": round(1000 * cpu / logins, 1),
        "burst": burst,
        "burst_p95_ms": round(1000 * _quantile(list(at_once), 0.95), 1),
        "burst_max_ms": round(1000 * max(at_once), 1),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})
    results = []
    for cost in args.costs:
        result = await measure(cost, args.logins, args.burst)
        print(
            f"cost {cost}: login p50 {result['sequential_p50_ms']} ms, "
            f"p95 {result['sequential_p95_ms']} ms, "
            f"server CPU {result['server_cpu_ms_per_login']} ms per login; "
            f"{args.burst} at once: p95 {result['burst_p95_ms']} ms, "
            f"slowest {result['burst_max_ms']} ms"
        )
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--costs", type=lambda raw: [int(c) for c in raw.split(",")], default=[14, 17]
    )
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json is not None:
        command = "python -m scripts.bench_login " + " ".join(sys.argv[1:])
        args.json.write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The load test against a cluster through one URL: ``--nodes`` ``python -m api`` nodes on
one ``redis-server`` and nx-27017, behind a loopback TCP balancer (the one URL), the load
generator on another core than the nodes.

It reports how the classes spread over the nodes, each node's CPU in cores while everyone
is in, the load test's own figures (joins, fps, loss), ``JOIN_ROOM`` → ``ROOM_JOINED`` of a
probe student joining on the room's node and relayed through another one (alternated,
under the load), and the time from the death (``kill -9``) of a probe class's room node to
every one of its participants back in media.

    python -m scripts.bench_cluster --json docs/benchmarks/cluster.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from redis.asyncio import Redis

from api.auth.keys import KEY_FILE, load_or_create_signing_key
from api.cluster.room_map import room_key
from scripts.bench.systems import REPO, free_port, pinned, stop_process
from scripts.load.monitor import percentile
from scripts.support.balancer import TcpBalancer
from scripts.support.nx27017 import running_nx27017
from scripts.support.redis_server import RedisProcess
from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.peer import SyntheticPeer
from scripts.synthpeer.rejoin import StayInRoom
from sfu import MediaConfig

SERVER_CPU, LOADGEN_CPU = 1, 0


class Node:
    """One node process: its id, URL and CPU times."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=REPO,
                env={**os.environ, **env, "PORT": str(self.port), "NODE_ID": name,
                     "NODE_HTTP_URL": self.base_url},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=pinned(SERVER_CPU),
            )  # fmt: skip
        self.ps = psutil.Process(self.process.pid)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)


@contextlib.asynccontextmanager
async def cluster(workdir: Path, nodes: int) -> AsyncIterator[tuple[list[Node], str, TcpBalancer]]:
    redis = RedisProcess(workdir / "redis.log", cpu=SERVER_CPU)
    redis.start()
    started: list[Node] = []
    balancer = TcpBalancer([])
    try:
        with running_nx27017(workdir / "nx") as mongo:
            load_or_create_signing_key(workdir)
            env = {
                "HOST": "127.0.0.1",
                "LOG_LEVEL": "WARNING",
                "MONGODB_URI": mongo.uri,
                "REDIS_URL": redis.url,
                "JWT_SIGNING_KEY_FILE": str(workdir / KEY_FILE),
                "NODE_HEARTBEAT_SECONDS": "0.5",
                "NODE_TTL_SECONDS": "1.5",
                "NODE_DRAIN_SECONDS": "1",
                "AUTH_THROTTLE": "false",
                "PASSWORD_HASH_COST": "10",
                "OVERLOAD_LAG_MS": "0",
            }
            for i in range(nodes):
                name = f"node-{chr(ord('a') + i)}"
                node_env = {
                    **env,
                    "DATA_DIR": str(workdir / name),
                    "ICE_ADDRESSES": f"127.0.0.{2 + i}",
                }
                started.append(Node(name, node_env, workdir / f"{name}.log"))
            async with aiohttp.ClientSession() as http:
                for node in started:
                    await _answering(http, node)
            balancer = TcpBalancer([("127.0.0.1", n.port) for n in started])
            await balancer.start()
            yield started, redis.url, balancer
    finally:
        await balancer.stop()
        for node in started:
            stop_process(node.process)
        redis.stop()


async def _answering(http: aiohttp.ClientSession, node: Node) -> None:
    for _ in range(300):
        if node.process.poll() is not None:
            raise RuntimeError(f"{node.name} exited before it answered")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(node.base_url + "/health") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{node.name} did not answer within 30 s")


async def _health(http: aiohttp.ClientSession, node: Node) -> dict[str, Any]:
    async with http.get(node.base_url + "/health") as response:
        data: dict[str, Any] = (await response.json())["data"]["node"]
        return data


async def sample_nodes(
    nodes: list[Node],
    http: aiohttp.ClientSession,
    samples: list[dict[str, Any]],
    stop: asyncio.Event,
) -> None:
    """Every second: each live node's CPU seconds, rooms and participants."""
    while not stop.is_set():
        row: dict[str, Any] = {"t": time.monotonic(), "nodes": {}}
        for node in nodes:
            if node.process.poll() is not None:
                continue
            with contextlib.suppress(aiohttp.ClientError, psutil.Error):
                health = await _health(http, node)
                row["nodes"][node.name] = {
                    "cpu_s": node.cpu_seconds(),
                    "rooms": health["rooms"],
                    "participants": health["participants"],
                }
        samples.append(row)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def steady_cores(samples: list[dict[str, Any]], planned: int) -> dict[str, Any]:
    """Per node: cores over the samples where every load-test participant was in."""

    def total(row: dict[str, Any]) -> int:
        return sum(n["participants"] for n in row["nodes"].values())

    steady = [r for r in samples if total(r) >= planned]
    peak = max((total(r) for r in steady), default=0)
    if len(steady) < 2:
        return {"participants": peak, "seconds": 0, "nodes": {}}
    first, last = steady[0], steady[-1]
    span = last["t"] - first["t"]
    per_node = {
        name: {
            "cores": round(
                (last["nodes"][name]["cpu_s"] - first["nodes"][name]["cpu_s"]) / span, 3
            ),
            "rooms": last["nodes"][name]["rooms"],
            "participants": last["nodes"][name]["participants"],
        }
        for name in last["nodes"]
        if name in first["nodes"]
    }
    return {"participants": peak, "seconds": round(span, 1), "nodes": per_node}


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.1)


def _media(config: MediaConfig) -> MediaClient:
    return MediaClient(config, video=vp8_clip(), audio=ToneAudioTrack(), decode="none")


async def _class(
    api: ClassroomApi, teacher: Account, students: int, tag: str
) -> tuple[str, list[Account]]:
    class_id = (await api.create_class(teacher, f"probe {tag}"))["_id"]
    accounts = []
    for i in range(students):
        student = await api.register(f"P{tag}{i}", f"probe-{tag}-{i}@school.test", "student")
        await api.enrol(teacher, class_id, student.id)
        accounts.append(student)
    await api.start_session(teacher, class_id)
    return class_id, accounts


async def join_latency(
    http: aiohttp.ClientSession, balancer: TcpBalancer, nodes: list[Node], redis: Redis, joins: int
) -> dict[str, Any]:
    """A probe student joins (no media) alternately on the room's node and relayed."""
    api = ClassroomApi(balancer.base_url, http)
    teacher = await api.register("Probe T", "probe-join-t@school.test", "teacher")
    class_id, (student,) = await _class(api, teacher, 1, "join")
    home = json.loads(await redis.get(room_key(class_id)) or "{}")["nodeId"]
    by_name = {n.name: n for n in nodes}
    other = next(n for n in nodes if n.name != home)
    seconds: dict[str, list[float]] = {"same_node": [], "relayed": []}
    for i in range(2 * joins):
        kind, node = ("same_node", by_name[home]) if i % 2 == 0 else ("relayed", other)
        peer = SyntheticPeer(ClassroomApi(node.base_url, http), student, _media, class_id=class_id)
        try:
            await peer.join(publish=False)
            seconds[kind].append(peer.joined_at - peer.join_started)
        finally:
            await peer.close()
    return {
        kind: {
            "joins": len(values),
            "p50_ms": round(1000 * (percentile(values, 0.5) or 0), 1),
            "p95_ms": round(1000 * (percentile(values, 0.95) or 0), 1),
        }
        for kind, values in seconds.items()
    }


async def failover(
    http: aiohttp.ClientSession,
    balancer: TcpBalancer,
    nodes: list[Node],
    redis: Redis,
    students: int,
) -> dict[str, Any]:
    """A probe class of a teacher and `students` with media, through the one URL; its room
    node is killed with -9; how long until every one of them is back in media."""
    api = ClassroomApi(balancer.base_url, http)
    teacher = await api.register("Fail T", "probe-fail-t@school.test", "teacher")
    class_id, accounts = await _class(api, teacher, students, "fail")
    peers = [SyntheticPeer(api, a, _media, class_id=class_id) for a in [teacher, *accounts]]
    keepers = [StayInRoom(p) for p in peers]
    try:
        for peer in peers:
            await peer.join()
            await peer.wait_connected(20)
        for keeper in keepers:
            keeper.start()
        home = json.loads(await redis.get(room_key(class_id)) or "{}")["nodeId"]
        victim = next(n for n in nodes if n.name == home)
        victim.process.kill()
        killed = time.monotonic()
        victim.process.wait(10)
        await _until(lambda: all(k.rejoins for k in keepers), 60, "every participant back")
        back = sorted(k.rejoins[0].back_at - killed for k in keepers)
        moved = json.loads(await redis.get(room_key(class_id)) or "{}")["nodeId"]
        return {
            "participants": len(peers),
            "killed": home,
            "placed_again_on": moved,
            "all_back_in_media_s": round(back[-1], 2),
            "first_back_s": round(back[0], 2),
            "attempts": [k.rejoins[0].attempts for k in keepers],
        }
    finally:
        for keeper in keepers:
            await keeper.stop()
        for peer in peers:
            await peer.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {LOADGEN_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    async with (
        cluster(workdir, args.nodes) as (nodes, redis_url, balancer),
        aiohttp.ClientSession() as http,
    ):
        redis = Redis.from_url(redis_url, decode_responses=True)
        samples: list[dict[str, Any]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_nodes(nodes, http, samples, stop))
        load_json = workdir / "load.json"
        command = [
            sys.executable, "-m", "scripts.loadtest", "--url", balancer.base_url,
            "--classes", str(args.classes), "--students", str(args.students),
            "--publishers", str(args.publishers), "--resolution", "320x180", "--fps", "15",
            "--bitrate", "150000", "--duration", str(args.duration), "--no-progress",
            "--json", str(load_json),
        ]  # fmt: skip
        load = await asyncio.create_subprocess_exec(
            *command, cwd=REPO, preexec_fn=pinned(LOADGEN_CPU), stdout=subprocess.DEVNULL
        )
        planned = args.classes * (args.students + 1)

        def everyone_in() -> bool:
            latest = samples[-1]["nodes"].values() if samples else []
            joined: int = sum(n["participants"] for n in latest)
            return bool(joined >= planned)

        await _until(everyone_in, args.duration + 300, "every load-test participant in")
        latency = await join_latency(http, balancer, nodes, redis, args.probe_joins)
        await load.wait()
        stop.set()
        await sampler
        loaded = json.loads(load_json.read_text())
        result = {
            "command": " ".join(["python -m scripts.bench_cluster", *sys.argv[1:]]),
            "nodes": args.nodes,
            "classes": args.classes,
            "students": args.students,
            "publishers": args.publishers,
            "steady": steady_cores(samples, planned),
            "load": {
                "joins": loaded["joins"],
                "fps": {k: loaded["fps"][k] for k in ("mean", "p5", "below_25")},
                "loss": loaded["loss"],
                "peer_errors": len(loaded["peer_errors"]),
            },
            "join_room": latency,
            "balancer_connections": {f"{h}:{p}": n for (h, p), n in balancer.connections.items()},
        }
        result["failover"] = await failover(http, balancer, nodes, redis, args.failover_students)
        await redis.aclose()
        return result


def report(result: dict[str, Any]) -> str:
    steady = result["steady"]
    lines = [
        f"{result['classes']} classes x {result['students']} students over {result['nodes']} nodes "
        f"({steady['participants']} participants, {steady['seconds']} s steady):",
    ]
    for name, node in sorted(steady["nodes"].items()):
        lines.append(
            f"  {name}: {node['rooms']} rooms, {node['participants']} participants, "
            f"{node['cores']} cores"
        )
    joins = result["load"]["joins"]
    lines.append(
        f"load test joins: {joins['ok']}/{joins['attempted']} ok, JOIN_ROOM->ROOM_JOINED "
        f"p50 {joins['join_s']['p50']} s, p95 {joins['join_s']['p95']} s; "
        f"fps mean {result['load']['fps']['mean']}"
    )
    for kind, stats in result["join_room"].items():
        lines.append(
            f"probe JOIN_ROOM->ROOM_JOINED {kind}: p50 {stats['p50_ms']} ms, "
            f"p95 {stats['p95_ms']} ms ({stats['joins']} joins)"
        )
    fail = result["failover"]
    lines.append(
        f"kill -9 of {fail['killed']}: class placed again on {fail['placed_again_on']}, all "
        f"{fail['participants']} participants back in media after {fail['all_back_in_media_s']} s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--students", type=int, default=10)
    parser.add_argument("--publishers", type=int, default=4, help="publishers per class")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--probe-joins", type=int, default=20, help="joins of each kind")
    parser.add_argument("--failover-students", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

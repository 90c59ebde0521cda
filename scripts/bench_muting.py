"""Muting, measured: a muted microphone is forwarded to nobody, and unmuted it is heard
again at once.

A teacher publishes a microphone to `--listeners` students on a fresh server process.
Each cycle the teacher says it is muted (``MEDIA_STATE audio:false``) while its client
goes on sending (``--stop-sending``: it stops, as the page does), then unmutes. While
muted, the server's own count of forwarded audio packets (``/metrics``) and the packets
the students received must both stay still; after unmuting, the time from sending
``MEDIA_STATE audio:true`` to each student's first audio packet is the unmute latency.

    python -m scripts.bench_muting --cycles 10 --listeners 3 --json artifacts/muting.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from scripts.bench.systems import OurServer
from scripts.load.monitor import percentile
from scripts.load.population import build_population
from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

POLL = 0.002  # seconds between looks at the students' packet counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10, help="mute/unmute cycles (10)")
    parser.add_argument("--listeners", type=int, default=3, help="students listening (3)")
    parser.add_argument("--muted-seconds", type=float, default=2.0, help="per cycle (2)")
    parser.add_argument(
        "--stop-sending", action="store_true", help="the client stops sending while muted"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    return parser.parse_args(argv)


async def forwarded_audio_packets(session: aiohttp.ClientSession, base_url: str) -> float:
    """The server's ``classroom_forwarded_packets_total{kind="audio"}``."""
    async with session.get(base_url + "/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "classroom_forwarded_packets_total"
                and sample.labels.get("kind") == "audio"
            ):
                return sample.value
    return 0.0


def audio_packets(peer: SyntheticPeer, from_user: str) -> int:
    """Audio packets `peer` received from `from_user` so far."""
    assert peer.media is not None
    return sum(
        sink.packets
        for stream in peer.media.streams_of(from_user)
        for sink in [*stream.sinks.values(), *stream.finished]
        if sink.kind == "audio"
    )


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(POLL)


@dataclasses.dataclass
class Cycle:
    """One mute, hold, unmute."""

    forwarded_while_muted: float
    """Audio packets the server forwarded meanwhile (its ``/metrics``)."""
    received_while_muted: int
    """Audio packets the students received meanwhile."""
    unmute_ms: list[float]
    """Per student: ``MEDIA_STATE audio:true`` sent -> its first audio packet."""


async def one_cycle(
    session: aiohttp.ClientSession,
    base_url: str,
    teacher: SyntheticPeer,
    listeners: list[SyntheticPeer],
    args: argparse.Namespace,
) -> Cycle:
    teacher_id = teacher.user_id
    await teacher.set_microphone(False, keep_sending=not args.stop_sending)
    await asyncio.sleep(0.5)  # what was on its way has arrived
    server_before = await forwarded_audio_packets(session, base_url)
    heard_before = [audio_packets(p, teacher_id) for p in listeners]
    await asyncio.sleep(args.muted_seconds)
    server_muted = await forwarded_audio_packets(session, base_url)
    heard_muted = [audio_packets(p, teacher_id) for p in listeners]
    unmuted_at = time.monotonic()
    await teacher.set_microphone(True)
    first: dict[int, float] = {}

    def all_heard() -> bool:
        now = time.monotonic()
        for index, listener in enumerate(listeners):
            if index not in first and audio_packets(listener, teacher_id) > heard_muted[index]:
                first[index] = now - unmuted_at
        return len(first) == len(listeners)

    await until(all_heard, 10, "audio again after unmuting")
    await asyncio.sleep(0.5)
    return Cycle(
        forwarded_while_muted=server_muted - server_before,
        received_while_muted=sum(
            after - before for after, before in zip(heard_muted, heard_before, strict=True)
        ),
        unmute_ms=[round(first[i] * 1000, 1) for i in range(len(listeners))],
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-muting-"))
    server = OurServer(
        cpu=None, address="127.0.0.1", client_address="127.0.0.1", data_dir=workdir / "data"
    )
    await server.start()
    peers: list[SyntheticPeer] = []
    try:
        async with aiohttp.ClientSession() as session:
            api = ClassroomApi(server.base_url, session)
            plans, failures = await build_population(api, 1, args.listeners, concurrency=4)
            if failures or not plans[0].live:
                raise RuntimeError(f"could not set up the class: {failures}")
            plan = plans[0]

            def peer(account: Account, publish: bool) -> SyntheticPeer:
                def media(config: MediaConfig) -> MediaClient:
                    tone = ToneAudioTrack() if publish else None
                    return MediaClient(config, audio=tone, decode="none")

                made = SyntheticPeer(api, account, media, class_id=plan.class_id)
                peers.append(made)
                return made

            teacher = peer(plan.teacher, True)
            await teacher.join(publish=True)
            listeners = [peer(student, False) for student in plan.students]
            for listener in listeners:
                await listener.join(publish=False)
            teacher_id = teacher.user_id
            await until(
                lambda: all(audio_packets(p, teacher_id) > 50 for p in listeners),
                20,
                "every student hearing the teacher",
            )
            cycles = [
                await one_cycle(session, server.base_url, teacher, listeners, args)
                for _ in range(args.cycles)
            ]
            latencies = [ms for cycle in cycles for ms in cycle.unmute_ms]
            return {
                "listeners": args.listeners,
                "cycles": [dataclasses.asdict(cycle) for cycle in cycles],
                "client_kept_sending": not args.stop_sending,
                "forwarded_while_muted": sum(c.forwarded_while_muted for c in cycles),
                "received_while_muted": sum(c.received_while_muted for c in cycles),
                "unmute_ms_p50": percentile(latencies, 0.5),
                "unmute_ms_p95": percentile(latencies, 0.95),
                "unmute_ms_max": max(latencies) if latencies else None,
            }
    finally:
        for made in peers:
            await made.close()
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    print(
        f"muted {args.cycles} x {args.muted_seconds:g} s "
        f"({'client kept sending' if result['client_kept_sending'] else 'client stopped'}): "
        f"{result['forwarded_while_muted']:.0f} audio packets forwarded (server /metrics), "
        f"{result['received_while_muted']} received by {args.listeners} students"
    )
    print(
        f"unmuted -> audio at every student: p50 {result['unmute_ms_p50']} ms, "
        f"p95 {result['unmute_ms_p95']} ms, max {result['unmute_ms_max']} ms"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

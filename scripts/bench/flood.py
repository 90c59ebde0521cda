"""One participant floods, the others should not notice.

A run is one class (a teacher and `students`, every camera and microphone on, everyone
receiving everyone: `scripts.load.runner.LoadRun`) on a fresh server process. Once the
class has settled, one student (the flooder) starts sending, on its own publish
connection, what a misbehaving publisher sends (`FLOODS`):

- ``none``: nothing more (the baseline);
- ``rtp``: its camera sends every frame `factor` times, each time under new sequence
  numbers: `factor` times its packet and bit rate, valid SRTP and RTP (what an encoder
  ignoring every bandwidth limit would send);
- ``unknown_ssrc``: the same rate on an SSRC the offer did not name;
- ``rtcp``: `rtcp_rate` receiver reports a second.

What the other participants receive from everyone but the flooder (frame rate per stream,
hop latency of the teacher's camera, loss) is compared with the baseline's;
`scripts.bench_flood` interleaves the runs and reports the ratios.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from scripts.load.options import LoadOptions
from scripts.load.participant import LoadPeer
from scripts.load.progress import Progress
from scripts.load.runner import LoadRun
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.pacing import PacedStream, Pacer
from sfu.aiortc_adapter import testing

FLOODS = ("none", "rtp", "unknown_ssrc", "rtcp")
TICK = 0.01
"""Seconds between the flooder's bursts (each burst sends what the rate owes)."""
RTCP_RECEIVER_REPORT = 201


@dataclass(frozen=True)
class FloodSettings:
    """What every run of an invocation shares."""

    students: int = 10
    seconds: float = 30.0
    factor: int = 10
    """The flooder's camera (``rtp``) or a stray SSRC (``unknown_ssrc``, in addition to
    the camera) carries this many times the camera's own rate, in packets and bytes."""
    rtcp_rate: float = 2000.0
    bitrate: int = 500_000
    settle_max: float = 30.0
    measure_rate_seconds: float = 2.0
    """How long the flooder's own camera is watched to learn its rate."""


@dataclass(frozen=True)
class CameraStream:
    """What the flooder's publish offer says of its camera."""

    ssrc: int
    payload_type: int
    mid: str | None


def camera_stream(sdp: str) -> CameraStream:
    """The first video section's media SSRC (the first of an ``FID`` group), its first
    payload type and its mid, from a session description."""
    sections = re.split(r"\r?\n(?=m=)", sdp)
    for section in sections:
        media = re.match(r"m=video \d+ \S+ (\d+)", section)
        if media is None:
            continue
        group = re.search(r"a=ssrc-group:FID (\d+)", section)
        first = group or re.search(r"a=ssrc:(\d+)", section)
        if first is None:
            break
        mid = re.search(r"a=mid:(\S+)", section)
        return CameraStream(int(first.group(1)), int(media.group(1)), mid and mid.group(1))
    raise ValueError("the offer has no video section with an SSRC")


def receiver_report(ssrc: int) -> bytes:
    """An RTCP receiver report without report blocks (8 bytes) from `ssrc`."""
    return struct.pack("!BBHI", 0x80, RTCP_RECEIVER_REPORT, 1, ssrc)


@dataclass
class Flooder:
    """Sends `kind` (``unknown_ssrc``, ``rtcp``) on `pc` at `packets_per_second` until
    cancelled."""

    pc: RTCPeerConnection
    kind: str
    camera: CameraStream
    packets_per_second: float
    payload_bytes: int
    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    _random: random.Random = field(default_factory=lambda: random.Random(7))

    async def run(self) -> None:
        ssrc = self.camera.ssrc
        if self.kind == "unknown_ssrc":
            ssrc = 0x5EED_0000 | self._random.getrandbits(16)
        sequence = self._random.getrandbits(16)
        payload = os.urandom(self.payload_bytes)
        report = receiver_report(self.camera.ssrc)
        started = time.monotonic()
        owed = 0.0
        try:
            while True:
                await asyncio.sleep(TICK)
                now = time.monotonic()
                owed = self.packets_per_second * (now - started) - self.sent - self.failed
                for _ in range(int(owed)):
                    try:
                        if self.kind == "rtcp":
                            await testing.send_raw_rtcp(self.pc, report)
                        else:
                            await testing.send_raw_rtp(
                                self.pc, ssrc, self.camera.payload_type, sequence, payload
                            )
                        self.sent += 1
                    except ConnectionError:
                        self.failed += 1
                    sequence = (sequence + 1) & 0xFFFF
        finally:
            self.seconds = time.monotonic() - started


async def outbound_video(pc: RTCPeerConnection) -> tuple[int, int]:
    """Packets and bytes the camera has sent so far (``getStats``)."""
    report = await pc.getStats()
    packets = octets = 0
    for stats in report.values():
        if getattr(stats, "type", None) == "outbound-rtp" and stats.kind == "video":
            packets += stats.packetsSent
            octets += stats.bytesSent
    return packets, octets


@dataclass
class RepeatedCamera:
    """The flooder's paced camera sending each frame `repeat` times (``rtp``)."""

    stream: PacedStream
    repeat: int
    sent: int = 0
    seconds: float = 0.0
    _start: tuple[int, float] = (0, 0.0)

    def start(self) -> None:
        self._start = self.stream.rtp.packets_sent, time.monotonic()
        self.stream.repeat = self.repeat

    def stop(self) -> None:
        self.stream.repeat = 1
        packets, started = self._start
        self.seconds = time.monotonic() - started
        # the packets beyond the camera's own, one copy in `repeat` being the camera
        self.sent = (self.stream.rtp.packets_sent - packets) * (self.repeat - 1) // self.repeat


def paced_stream(ssrc: int) -> PacedStream:
    """This process's paced stream of `ssrc`."""
    for stream in Pacer.of(asyncio.get_running_loop()).streams:
        if stream.rtp.ssrc == ssrc:
            return stream
    raise LookupError(f"no paced stream sends SSRC {ssrc}")


class FloodRun(LoadRun):
    """A `LoadRun` whose first student floods once the class has settled."""

    def __init__(self, options: LoadOptions, flood: str, settings: FloodSettings) -> None:
        super().__init__(options, Progress(options.progress))
        self.flood = flood
        self.settings = settings
        self.flooder_id: str | None = None
        self.flooder: Flooder | RepeatedCamera | None = None
        self.camera_rate: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.flood_error: str | None = None
        """Why the flooder stopped before the window's end (it should not)."""

    def _flooding_peer(self) -> LoadPeer | None:
        return next((p for p in self.peers if p.account.role == "student" and p.joined), None)

    async def _settle(self, monitor: Any) -> None:
        await super()._settle(monitor)
        peer = self._flooding_peer()
        if peer is None:
            return
        self.flooder_id = peer.user_id
        media = peer.peer.media
        assert isinstance(media, MediaClient) and media.publish_pc is not None
        pc = media.publish_pc
        assert pc.localDescription is not None
        camera = camera_stream(pc.localDescription.sdp)
        packets, octets = await outbound_video(pc)
        await asyncio.sleep(self.settings.measure_rate_seconds)
        packets_after, octets_after = await outbound_video(pc)
        seconds = self.settings.measure_rate_seconds
        rate = (packets_after - packets) / seconds
        size = (octets_after - octets) / max(1, packets_after - packets)
        self.camera_rate = {"packets_per_s": round(rate, 1), "kbps": round(rate * size * 8e-3)}
        if self.flood == "none":
            return
        if self.flood == "rtp":
            self.flooder = RepeatedCamera(paced_stream(camera.ssrc), self.settings.factor)
            self.flooder.start()
        else:
            extra = (self.settings.factor - 1) * rate
            if self.flood == "rtcp":
                extra = self.settings.rtcp_rate
            self.flooder = Flooder(pc, self.flood, camera, extra, max(16, int(size) - 12))
            self._task = asyncio.create_task(self.flooder.run())
        await asyncio.sleep(1.0)  # the window starts with the flood under way

    async def _measure(self, monitor: Any) -> None:
        try:
            await super()._measure(monitor)
        finally:
            if isinstance(self.flooder, RepeatedCamera):
                self.flooder.stop()
            if self._task is not None:
                self._task.cancel()
                (outcome,) = await asyncio.gather(self._task, return_exceptions=True)
                if isinstance(outcome, Exception):
                    self.flood_error = f"{type(outcome).__name__}: {outcome}"

    def others_latency_ms(self) -> list[float]:
        """Hop latency samples of the window at every subscriber but the flooder."""
        samples: list[float] = []
        for client in self.registry.clients:
            if client.subscriber == self.flooder_id:
                continue
            for sink in client.video_sinks():
                if sink.probe is not None:
                    mark = self.window.probe_marks.get(id(sink.probe), 0)
                    samples += [s * 1000.0 for s in sink.probe.samples[mark:]]
        return samples


def flood_options(url: str, server_pid: int, settings: FloodSettings) -> LoadOptions:
    """The class of every run: every camera and microphone on, no ``SUBSCRIPTION``."""
    return LoadOptions(
        url=url,
        classes=1,
        students=settings.students,
        bitrate=settings.bitrate,
        duration=settings.seconds,
        settle_max=settings.settle_max,
        server_pid=server_pid,
    ).validate()

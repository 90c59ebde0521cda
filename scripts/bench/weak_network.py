"""The weak-network scenario: a teacher publishing a two-layer camera and a microphone,
one student whose downlink gets capped and then freed again, through a real server.

Layout (`scripts.bench.shaped_link`)::

    server namespace      classroom server (this process), the teacher (this process)
         | veth, tbf on the server end's egress while capped
    subscriber namespace  the student (`scripts.bench.weak_subscriber`, a child process)

Phases, each ended by a condition (with a timeout) or a hold:

1. ready: the student decodes the teacher's camera at the high layer's size, hears the
   microphone, and ``LAYERS`` says camera high; then ``warmup`` s more;
2. capped: ``tc ... tbf rate <cap>kbit``; until ``LAYERS`` says camera low for bandwidth
   and the decoded picture is the low layer's size, then held until ``capped`` s after
   the cap;
3. lifted: the shaping removed; until ``LAYERS`` says camera high and the picture is the
   high layer's size again, and has stayed so for ``after`` s.

What the student decoded (every frame, with its time), the ``LAYERS`` events and the
server's downlink estimate for the student (sampled every 0.2 s) come back in a
`WeakRun`; `scripts.bench.weak_timeline` reads the numbers out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from api.app import create_app
from api.config import Settings
from api.services import SERVICES
from scripts.bench.shaped_link import SERVER_ADDRESS, SUBSCRIBER_ADDRESS, ShapedLink
from scripts.coturn_local import free_port
from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, camera_layers
from scripts.synthpeer.peer import SyntheticPeer
from sfu import MediaConfig

REPO = Path(__file__).resolve().parents[2]
SAMPLE_EVERY = 0.2
POLL = 0.05


@dataclass(frozen=True)
class WeakSettings:
    """The scenario's knobs (seconds unless said otherwise)."""

    cap_kbit: int = 600
    warmup: float = 5.0
    capped: float = 30.0
    """Held from the cap on (at least until the low layer is decoded)."""
    after: float = 10.0
    """How long the picture must stay on the high layer after the lift."""
    ready_timeout: float = 30.0
    low_timeout: float = 30.0
    high_timeout: float = 60.0
    high_bitrate: int = 770_000
    low_bitrate: int = 120_000
    high_size: tuple[int, int] = (640, 360)
    low_size: tuple[int, int] = (320, 180)


@dataclass
class WeakRun:
    """What one run saw, all times ``time.monotonic()``."""

    settings: WeakSettings
    phases: dict[str, float] = field(default_factory=dict)
    """``ready``, ``capped``, ``low_seen``, ``lifted``, ``high_seen``, ``end``."""
    record: dict[str, Any] = field(default_factory=dict)
    """The student's record (`scripts.bench.weak_subscriber.record`)."""
    server: list[dict[str, Any]] = field(default_factory=list)
    """The server's view of the student's downlink, every `SAMPLE_EVERY` s."""
    failure: str | None = None
    """Why the run stopped early (a condition that did not come true in time)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Student:
    """The child process and its latest status line."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.status: dict[str, Any] = {}
        self.record: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if "status" in message:
                        self.status = message["status"]
                    elif "record" in message and not self.record.done():
                        self.record.set_result(message["record"])
        finally:
            if not self.record.done():
                self.record.set_exception(
                    RuntimeError(f"the student exited without its record; see {self.log}")
                )

    async def finish(self, timeout: float = 20.0) -> dict[str, Any]:
        """Ask for the record, then make sure the process is gone (by its PID)."""
        try:
            if self.process.stdin is not None and not self.process.stdin.is_closing():
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.process.stdin.write(b"stop\n")
                    await self.process.stdin.drain()
            return await asyncio.wait_for(asyncio.shield(self.record), timeout)
        finally:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            self._reader.cancel()


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(POLL)


async def _hold_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def run(settings: WeakSettings, workdir: Path | None = None) -> WeakRun:
    """One run of the scenario (needs root: it makes namespaces and shapes a link)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bench-weak-"))
    link = ShapedLink.create()
    try:
        with link.entered_server():
            return await _run_inside(link, settings, workdir)
    finally:
        link.close()


async def _run_inside(link: ShapedLink, settings: WeakSettings, workdir: Path) -> WeakRun:
    result = WeakRun(settings)
    port = free_port(SERVER_ADDRESS)
    app = create_app(
        Settings(
            host=SERVER_ADDRESS,
            port=port,
            data_dir=workdir / "data",
            ice_addresses=(SERVER_ADDRESS,),
            log_level="WARNING",
        )
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, SERVER_ADDRESS, port).start()
    base_url = f"http://{SERVER_ADDRESS}:{port}"
    api = ClassroomApi(base_url)
    teacher: SyntheticPeer | None = None
    student: _Student | None = None
    sampler: asyncio.Task[None] | None = None
    try:
        accounts = await _class(api)
        layers = camera_layers(
            fps=30,
            high_bitrate=settings.high_bitrate,
            low_bitrate=settings.low_bitrate,
            high_size=settings.high_size,
            low_size=settings.low_size,
        )

        def teacher_media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config, video=layers.high, low_video=layers.low, audio=ToneAudioTrack()
            )

        teacher = SyntheticPeer(
            api,
            accounts["teacher"],
            teacher_media,
            class_id=accounts["class"],
            host_addresses=(SERVER_ADDRESS,),
        )
        await teacher.join(publish=True)
        student = await _start_student(link, base_url, accounts, workdir / "student.log")
        sampler = asyncio.ensure_future(_sample_server(app, accounts["student"].id, result))
        try:
            await _phases(link, settings, student, result)
        except TimeoutError as timeout:
            result.failure = str(timeout)
        result.phases["end"] = time.monotonic()
        result.record = await student.finish()
        student = None
    finally:
        link.lift()
        if sampler is not None:
            sampler.cancel()
        if student is not None:
            with contextlib.suppress(Exception):
                await student.finish()
        if teacher is not None:
            await teacher.close()
        await api.close()
        await runner.cleanup()
    return result


async def _class(api: ClassroomApi) -> dict[str, Any]:
    teacher = await api.register("Weak Teacher", "teacher@weak.test", "teacher")
    student = await api.register("Weak Student", "student@weak.test", "student")
    created = await api.create_class(teacher, "Weak network")
    await api.enrol(teacher, created["_id"], student.id)
    await api.start_session(teacher, created["_id"])
    return {"teacher": teacher, "student": student, "class": created["_id"]}


async def _start_student(
    link: ShapedLink, base_url: str, accounts: dict[str, Any], log: Path
) -> _Student:
    account: Account = accounts["student"]
    payload = {
        "baseUrl": base_url,
        "account": dataclasses.asdict(account),
        "classId": accounts["class"],
        "teacherId": accounts["teacher"].id,
        "hostAddress": SUBSCRIBER_ADDRESS,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            *link.subscriber_command(
                sys.executable, "-m", "scripts.bench.weak_subscriber", json.dumps(payload)
            ),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=1 << 26,  # the record is one line of every decoded frame
        )
    return _Student(process, log)


async def _phases(
    link: ShapedLink, settings: WeakSettings, student: _Student, result: WeakRun
) -> None:
    high, low = list(settings.high_size), list(settings.low_size)

    def on(camera: str, size: list[int], reason: str | None = None) -> Callable[[], bool]:
        def check() -> bool:
            s = student.status
            return (
                s.get("camera") == camera
                and (reason is None or s.get("reason") == reason)
                and s.get("size") == size
            )

        return check

    def hearing() -> bool:
        return bool(student.status.get("connected")) and student.status.get("audioSamples", 0) > 0

    await _until(
        lambda: on("high", high)() and hearing(),
        settings.ready_timeout,
        "the student decoding the high layer and hearing the teacher",
    )
    result.phases["ready"] = time.monotonic()
    await asyncio.sleep(settings.warmup)
    link.cap(settings.cap_kbit)
    capped = result.phases["capped"] = time.monotonic()
    await _until(
        on("low", low, "bandwidth"),
        settings.low_timeout,
        f"camera low for bandwidth and a {low[0]}x{low[1]} picture "
        f"under {settings.cap_kbit} kbit/s",
    )
    result.phases["low_seen"] = time.monotonic()
    await _hold_until(capped + settings.capped)
    link.lift()
    result.phases["lifted"] = time.monotonic()
    since: list[float] = []

    def settled() -> bool:
        """On high, and so for `after` s (a retry in flight at the lift may still fail)."""
        if not on("high", high)():
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= settings.after

    await _until(
        settled,
        settings.high_timeout + settings.after,
        f"camera high and a {high[0]}x{high[1]} picture for {settings.after:g} s "
        "after the cap was lifted",
    )
    result.phases["high_seen"] = since[0]


async def _sample_server(app: web.Application, student_id: str, result: WeakRun) -> None:
    """The server's downlink estimate for the student and what it sends it."""
    previous: tuple[float, int] | None = None
    while True:
        await asyncio.sleep(SAMPLE_EVERY)
        rooms = app[SERVICES].rooms.rooms
        member = rooms[0].members.get(student_id) if rooms else None
        if member is None:
            continue
        participant = member.participant
        estimate = participant.subscription.downlink()
        stats = participant.stats()
        now = time.monotonic()
        sent = sum(c.bytes_forwarded + 50 * c.packets_forwarded for c in stats.consumers)
        rate = None
        if previous is not None and now > previous[0]:
            rate = 8 * (sent - previous[1]) / (now - previous[0])
        previous = (now, sent)
        camera = next((c for c in stats.consumers if c.source == "camera"), None)
        result.server.append(
            {
                "t": now,
                "retransmissions": sum(c.retransmissions for c in stats.consumers),
                "nacks": sum(c.nacks_received for c in stats.consumers),
                "limit": participant.downlink_limit,
                "remb": None if estimate is None else estimate.remb,
                "loss": None if estimate is None else estimate.last_loss,
                "sent": rate,
                "layer": None if camera is None else camera.layer,
            }
        )

"""The load test's options: command line, defaults and the bounds that keep a run finite."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from api.cli import OneLineParser, distribution_version
from scripts.synthpeer.subscription import DEFAULT_TILES
from sfu.config import TurnTransport

MAX_PARTICIPANTS = 2000
MAX_DURATION = 3600.0


class OptionError(ValueError):
    """An option value the load test cannot run with."""


@dataclass(frozen=True)
class LoadOptions:
    """One load-test run (see ``classroom-loadtest --help`` for each field)."""

    url: str = "http://127.0.0.1:3000"
    classes: int = 1
    students: int = 5
    publishers: int | None = None
    """Publishing participants per class, teacher first; `None`: everyone publishes."""
    audio: bool = True
    video: bool = True
    width: int = 640
    height: int = 360
    fps: int = 30
    bitrate: int = 770_000
    clip_frames: int = 150
    layers: int = 1
    """Camera layers published: 1 (one m-section, today's page) or 2 (high and low)."""
    low_bitrate: int = 120_000
    """bits/s of the low layer (320x180; the server expects <= 150 kbit/s)."""
    screen: bool = False
    """Each teacher shares a screen once joined."""
    subscribe: str = "all"
    """``all``: no ``SUBSCRIPTION`` (everyone gets everything); ``page``: ask like the page
    (and offer Opus DTX like it)."""
    tiles: int = DEFAULT_TILES
    """With ``page``: student cameras asked for (layer low); the others' are off."""
    unmuted: int | None = None
    """Microphones left on per class, teacher first; the others mute after joining.
    `None`: all on."""
    muted_keep_sending: bool = False
    """Muted microphones keep sending (the server must drop them) instead of stopping."""
    server_pid: int | None = None
    """Read the server's CPU from /proc of this process (same machine) instead of
    ``/metrics``."""
    ramp: float = 5.0
    """Joins started per second."""
    duration: float = 30.0
    """Seconds measured once everyone has joined."""
    settle_latency_ms: float = 200.0
    """Before measuring, wait until hop latency p95 is under this (at most `settle_max`)."""
    settle_max: float = 30.0
    relay_only: bool = False
    turn_transports: tuple[TurnTransport, ...] = ("udp", "tcp", "tls")
    """Which of the server's TURN URLs aiortc uses (it takes one), in preference order."""
    churn: float = 0.0
    """Leave/rejoin events per minute (random students)."""
    churn_pause: float = 2.0
    chat_rate: float = 0.0
    """Chat messages a minute per student (scripts.load.activity)."""
    hand_rate: float = 0.0
    """Hands raised a minute per student; the teacher lowers them at each poll's end."""
    poll_every: float = 0.0
    """Seconds between the teacher's polls (every student votes); 0: none."""
    seed: int = 1
    full_streams: int | None = 1
    """Streams per subscriber received whole (latency, decode sample);
    the others are counted from RTP headers only. `None`: all of them."""
    decode_sample: int = 10
    """Frames decoded at the start of each fully received video stream."""
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    metrics_token: str | None = None
    json_path: Path | None = None
    plot_path: Path | None = None
    join_timeout: float = 20.0
    setup_concurrency: int = 8
    max_seconds: float | None = None
    """Hard stop for the whole run; default: setup + ramp + duration + 120 s."""
    progress: bool = True

    @property
    def participants(self) -> int:
        return self.classes * (self.students + 1)

    @property
    def deadline(self) -> float:
        if self.max_seconds is not None:
            return self.max_seconds
        setup = self.participants * 0.2
        return setup + self.participants / self.ramp + self.settle_max + self.duration + 120.0

    def publishes(self, index: int) -> bool:
        """Whether the participant at ``index`` of its class (0 = teacher) publishes."""
        return self.publishers is None or index < self.publishers

    def microphone_on(self, index: int) -> bool:
        """Whether the participant at ``index`` of its class keeps the microphone on."""
        return self.unmuted is None or index < self.unmuted

    def validate(self) -> LoadOptions:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise OptionError(f"--url must be http(s)://host[:port], got {self.url!r}")
        if self.classes < 1 or self.students < 0:
            raise OptionError("--classes must be >= 1 and --students >= 0")
        if self.participants > MAX_PARTICIPANTS:
            raise OptionError(f"at most {MAX_PARTICIPANTS} participants per run")
        if not 0 < self.duration <= MAX_DURATION:
            raise OptionError(f"--duration must be in (0, {MAX_DURATION:g}] seconds")
        if self.ramp <= 0 or self.churn < 0 or self.churn_pause < 0:
            raise OptionError("--ramp must be > 0, --churn and --churn-pause >= 0")
        if not (0 <= self.chat_rate <= 60 and 0 <= self.hand_rate <= 60):
            raise OptionError("--chat-rate and --hand-rate must be 0..60 a minute")
        if self.poll_every != 0 and not 4 <= self.poll_every <= MAX_DURATION:
            raise OptionError("--poll-every must be 0 (no polls) or at least 4 seconds")
        if not (self.audio or self.video):
            raise OptionError("--no-audio and --no-video together leave nothing to send")
        if self.publishers is not None and self.publishers < 0:
            raise OptionError("--publishers must be 'all' or a count >= 0")
        if self.layers not in (1, 2):
            raise OptionError("--layers must be 1 or 2")
        if self.subscribe not in ("all", "page"):
            raise OptionError("--subscribe must be 'all' or 'page'")
        if self.tiles < 0 or (self.unmuted is not None and self.unmuted < 0):
            raise OptionError("--tiles and --unmuted must be >= 0")
        if not 10_000 <= self.low_bitrate <= 150_000:
            raise OptionError("--low-bitrate must be 10000..150000 bits/s")
        if not 2 <= self.clip_frames <= 256 or not 1 <= self.fps <= 60:
            raise OptionError("--clip-frames must be 2..256 and --fps 1..60")
        if self.width % 2 or self.height % 2 or not 64 <= self.width <= 1920:
            raise OptionError("--resolution must be even, 64..1920 wide")
        for address in self.ice_addresses:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise OptionError(f"--ice-address must be an IP address, got {address!r}") from None
        return self


def _count_or_all(raw: str) -> int | None:
    return None if raw == "all" else int(raw)


def _resolution(raw: str) -> tuple[int, int]:
    width, _, height = raw.lower().partition("x")
    return int(width), int(height)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="classroom-loadtest",
        description="Drive synthetic classrooms through the public API and report what "
        "participants receive and what the server spends.",
        epilog="Exit code: 0; 1 if joins failed, a peer reported an error or the run hit "
        "its time limit; 2 for bad options.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {distribution_version()}")
    p.add_argument(
        "--url",
        default=LoadOptions.url,
        metavar="URL",
        help="server base URL (default %(default)s)",
    )
    p.add_argument(
        "--classes",
        type=int,
        default=LoadOptions.classes,
        metavar="N",
        help="classes run side by side (default %(default)s)",
    )
    p.add_argument(
        "--students",
        type=int,
        default=LoadOptions.students,
        metavar="N",
        help="students per class, besides its teacher (default %(default)s)",
    )
    p.add_argument(
        "--publishers",
        type=_count_or_all,
        default=None,
        metavar="N|all",
        help="publishing participants per class, teacher first ('all' by default); "
        "the others are audience-only",
    )
    p.add_argument("--no-audio", action="store_true", help="publish no audio")
    p.add_argument("--no-video", action="store_true", help="publish no video")
    p.add_argument(
        "--resolution",
        type=_resolution,
        default=(640, 360),
        metavar="WxH",
        help="size of the video clip (default 640x360)",
    )
    p.add_argument(
        "--fps",
        type=int,
        default=LoadOptions.fps,
        metavar="N",
        help="frames per second of the clip, 1..60 (default %(default)s)",
    )
    p.add_argument(
        "--bitrate",
        type=int,
        default=LoadOptions.bitrate,
        metavar="BPS",
        help="bits/s of the clip (default %(default)s)",
    )
    p.add_argument(
        "--clip-frames",
        type=int,
        default=LoadOptions.clip_frames,
        metavar="N",
        help="frames in the looped clip, 2..256 (default %(default)s)",
    )
    p.add_argument(
        "--layers",
        type=int,
        default=LoadOptions.layers,
        metavar="1|2",
        help="camera layers: 1 (today's page) or 2 (high, and low 320x180) (default 1)",
    )
    p.add_argument(
        "--low-bitrate",
        type=int,
        default=LoadOptions.low_bitrate,
        metavar="BPS",
        help="bits/s of the low layer, at most 150000 (default %(default)s)",
    )
    p.add_argument("--screen", action="store_true", help="each teacher shares a screen")
    p.add_argument(
        "--subscribe",
        choices=("all", "page"),
        default=LoadOptions.subscribe,
        help="'all': no SUBSCRIPTION, everyone gets everything (default); 'page': "
        "teacher camera high and screen, --tiles student cameras low, the rest off",
    )
    p.add_argument(
        "--tiles",
        type=int,
        default=LoadOptions.tiles,
        metavar="N",
        help="with --subscribe page: student cameras received (default %(default)s)",
    )
    p.add_argument(
        "--unmuted",
        type=_count_or_all,
        default=None,
        metavar="N|all",
        help="microphones left on per class, teacher first ('all' by default); the "
        "others send MEDIA_STATE audio:false and stop sending",
    )
    p.add_argument(
        "--muted-keep-sending",
        action="store_true",
        help="muted microphones keep sending (the server must not forward them)",
    )
    p.add_argument(
        "--server-pid",
        type=int,
        default=None,
        metavar="PID",
        help="server on this machine: read its CPU from /proc of PID, not /metrics",
    )
    p.add_argument(
        "--ramp",
        type=float,
        default=LoadOptions.ramp,
        metavar="PER_S",
        help="joins started per second (default %(default)s)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=LoadOptions.duration,
        metavar="S",
        help="seconds measured once everyone has joined (default %(default)s)",
    )
    p.add_argument(
        "--settle-latency-ms",
        type=float,
        default=LoadOptions.settle_latency_ms,
        metavar="MS",
        help="before measuring, wait until hop latency p95 is under this (default %(default)s)",
    )
    p.add_argument(
        "--settle-max",
        type=float,
        default=LoadOptions.settle_max,
        metavar="S",
        help="longest such wait (default %(default)s)",
    )
    p.add_argument(
        "--relay-only",
        action="store_true",
        help="media through the TURN relay from ROOM_JOINED only (iceTransportPolicy relay)",
    )
    p.add_argument(
        "--turn-transport",
        action="append",
        choices=("udp", "tcp", "tls"),
        default=None,
        help="TURN URL transport to use, repeatable, in preference order (default udp,tcp,tls)",
    )
    p.add_argument(
        "--churn",
        type=float,
        default=0.0,
        metavar="PER_MIN",
        help="leave/rejoin events per minute, of random students (default 0)",
    )
    p.add_argument(
        "--churn-pause",
        type=float,
        default=LoadOptions.churn_pause,
        metavar="S",
        help="seconds a churning student stays out before rejoining (default %(default)s)",
    )
    p.add_argument(
        "--chat-rate",
        type=float,
        default=0.0,
        metavar="PER_MIN",
        help="chat messages a minute per student during the window (default 0); the "
        "summary gives their delivery latency at every receiver",
    )
    p.add_argument(
        "--hand-rate",
        type=float,
        default=0.0,
        metavar="PER_MIN",
        help="hands raised a minute per student (default 0); the teacher lowers them all "
        "at the end of each poll",
    )
    p.add_argument(
        "--poll-every",
        type=float,
        default=0.0,
        metavar="S",
        help="the teacher runs a poll every S seconds, open for min(10, S/2); every "
        "student in the room votes (default 0: no polls)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=LoadOptions.seed,
        metavar="N",
        help="random seed of the churn and the classroom activity (default %(default)s)",
    )
    p.add_argument(
        "--full-streams",
        type=_count_or_all,
        default=1,
        metavar="N|all",
        help="streams per subscriber received whole (the C receive path where it is "
        "built) for latency and a decode sample (default 1); the rest are counted from "
        "RTP headers",
    )
    p.add_argument(
        "--decode-sample",
        type=int,
        default=LoadOptions.decode_sample,
        metavar="N",
        help="frames decoded at the start of each fully received stream (default %(default)s)",
    )
    p.add_argument(
        "--ice-address",
        action="append",
        default=None,
        metavar="IP",
        help="local address the synthetic peers gather on (repeatable; default 127.0.0.1)",
    )
    p.add_argument(
        "--metrics-token",
        default=None,
        metavar="TOKEN",
        help="bearer token for the server's /metrics (not needed on loopback)",
    )
    p.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the summary JSON here"
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a PNG plot here (needs matplotlib, the 'plot' extra)",
    )
    p.add_argument(
        "--join-timeout",
        type=float,
        default=LoadOptions.join_timeout,
        metavar="S",
        help="seconds one join may take (default %(default)s)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        metavar="S",
        help="hard stop for the whole run (default: setup + ramp + settle + duration + 120)",
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress on stderr")
    return p


def parse_options(argv: Sequence[str] | None = None) -> LoadOptions:
    args = parser().parse_args(argv)
    width, height = args.resolution
    return LoadOptions(
        url=args.url,
        classes=args.classes,
        students=args.students,
        publishers=args.publishers,
        audio=not args.no_audio,
        video=not args.no_video,
        width=width,
        height=height,
        fps=args.fps,
        bitrate=args.bitrate,
        clip_frames=args.clip_frames,
        layers=args.layers,
        low_bitrate=args.low_bitrate,
        screen=args.screen,
        subscribe=args.subscribe,
        tiles=args.tiles,
        unmuted=args.unmuted,
        muted_keep_sending=args.muted_keep_sending,
        server_pid=args.server_pid,
        ramp=args.ramp,
        duration=args.duration,
        settle_latency_ms=args.settle_latency_ms,
        settle_max=args.settle_max,
        relay_only=args.relay_only,
        turn_transports=tuple(args.turn_transport or ("udp", "tcp", "tls")),
        churn=args.churn,
        churn_pause=args.churn_pause,
        chat_rate=args.chat_rate,
        hand_rate=args.hand_rate,
        poll_every=args.poll_every,
        seed=args.seed,
        full_streams=args.full_streams,
        decode_sample=args.decode_sample,
        ice_addresses=tuple(args.ice_address or ("127.0.0.1",)),
        metrics_token=args.metrics_token,
        json_path=args.json,
        plot_path=args.plot,
        join_timeout=args.join_timeout,
        max_seconds=args.max_seconds,
        progress=not args.no_progress,
    ).validate()

"""The paced relay floor: CPU per forwarded packet of a relay that does nothing else.

What one core of this machine costs per forwarded packet for the bare minimum of an
SFU's work: receive a paced UDP stream shaped like one VP8 640x360 30 fps publisher
(30 frames/s, each frame 3 datagrams back-to-back: 1100, 1100 and 600 bytes, ~90
datagrams/s) and send each datagram to N destinations. At this rate the relay is idle
between frames, so every frame pays a wake-up; the numbers are the floor under
`scripts/bench_forwarding.py`'s (same packet rate, same loopback, same CPU split).

Variants, each a fresh process pinned to the first allowed CPU:

- ``c``: `relay_floor.c` (compiled here with ``cc -O2``; skipped without a C compiler):
  epoll_wait, recvfrom until EAGAIN, sendto per destination;
- ``c-rewrite``: the same, writing a per-destination 12-byte RTP header (SSRC, sequence
  number) before each sendto;
- ``py-asyncio``: asyncio's ``create_datagram_endpoint``, ``datagram_received`` calling
  ``transport.sendto`` N times;
- ``py-asyncio-srtp``: the same, unprotecting each packet once with a pylibsrtp
  `Session` and protecting it once per destination with that destination's `Session`
  (the stream is SRTP-protected RTP, same datagram sizes).

This process is the load generator, pinned to the second CPU: its main thread paces the
stream, a thread drains N sink sockets and counts what arrives ("forwarded packets").
After a warm-up, the window is a whole number of frames, its two ends taken half a frame
period after a frame (when the relay is idle). Over the window: the relay's CPU time
(user + system, all threads, from its process CPU clock, nanosecond resolution: psutil's
10 ms ticks are too coarse for the C relay at N=1) per forwarded packet, cores, packets,
loss (expected vs received at the sinks), the system share of the relay's CPU (from
/proc; left out when the window holds too few ticks to split) and, for the C relay, its
wake-ups per frame. Without ``CONFIG_VIRT_CPU_ACCOUNTING_GEN`` the kernel splits user and
system time by sampling timer ticks, which a relay busy ~1% of the time in bursts of
tens of microseconds rarely hits: the system share is then a rough estimate at best. On
loopback the relay's ``sendto`` also runs the receive path of each sink socket, as the
SFU's does in `scripts/bench_forwarding.py`.

    .venv/bin/python -m scripts.bench.relay_floor --n 1,10,50 --repeat 3 --json out.json

A relay process alone (what the generator starts)::

    python -m scripts.bench.relay_floor --worker py-asyncio --dest 40001,40002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from scripts.bench.medians import report_medians

REPO = Path(__file__).resolve().parents[2]
C_SOURCE = Path(__file__).with_name("relay_floor.c")
C_COMPILERS = ("cc", "gcc", "clang")
HOST = "127.0.0.1"

FPS = 30
FRAME_DATAGRAMS = (1100, 1100, 600)
"""Datagram sizes of one frame, sent back-to-back (SRTP tag included when protected)."""
RTP_HEADER_BYTES = 12
RTP_VERSION_BYTE = 0x80
RTP_PAYLOAD_TYPE = 96
RTP_MARKER = 0x80
RTP_CLOCK_PER_FRAME = 90_000 // FPS
PUBLISHER_SSRC = 0x1234ABCD
SRTP_KEY_BYTES = 30
MAX_DATAGRAM = 2048
SINK_RCVBUF = 1 << 20

C_VARIANTS = {"c": "plain", "c-rewrite": "rewrite"}
PY_VARIANTS = ("py-asyncio", "py-asyncio-srtp")
VARIANTS = (*C_VARIANTS, *PY_VARIANTS)

RELAY_START_TIMEOUT = 20.0
RELAY_STOP_TIMEOUT = 5.0
RELAY_LIFETIME_MARGIN = 30.0
"""A relay exits on its own this long after its run should have ended (if never stopped)."""
DRAIN_POLL_S = 0.2
NS_PER_S = 1e9
US_PER_S = 1e6
MS_PER_S = 1e3
MIN_TICKS_FOR_SPLIT = 10
"""Fewer /proc clock ticks than this in the window: no user/system split reported."""


# ---------------------------------------------------------------------------- relay workers


class _Relay(asyncio.DatagramProtocol):
    """Send every received datagram to each destination (SRTP: unprotect, protect per sink)."""

    def __init__(self, destinations: Sequence[tuple[str, int]], key: bytes | None) -> None:
        self._destinations = list(destinations)
        self._transport: asyncio.DatagramTransport | None = None
        self._inbound: Session | None = None
        self._outbound: list[tuple[Session, tuple[str, int]]] = []
        if key is not None:
            self._inbound = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
            for destination in self._destinations:
                policy = Policy(key=os.urandom(SRTP_KEY_BYTES), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
                self._outbound.append((Session(policy=policy), destination))
        self.received = 0
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport (3.11)
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        transport = self._transport
        assert transport is not None
        self.received += 1
        if self._inbound is None:
            for destination in self._destinations:
                transport.sendto(data, destination)
            return
        try:
            plain = self._inbound.unprotect(data)
        except SrtpError:
            self.errors += 1
            return
        for session, destination in self._outbound:
            transport.sendto(session.protect(plain), destination)


async def _worker(variant: str, ports: list[int], key: bytes | None, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    relay = _Relay([(HOST, port) for port in ports], key if variant == "py-asyncio-srtp" else None)
    transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=(HOST, 0))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"PORT {transport.get_extra_info('sockname')[1]}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime)
    transport.close()
    sent = (relay.received - relay.errors) * len(ports)
    print(f"DONE {relay.received} {sent} {relay.errors}", flush=True)


def find_compiler() -> str | None:
    """The C compiler to use ($CC first), or None."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else []
    for name in (*candidates, *C_COMPILERS):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def compile_relay(directory: Path) -> Path | None:
    """Build `relay_floor.c` into ``directory``; None when there is no C compiler."""
    compiler = find_compiler()
    if compiler is None:
        return None
    binary = directory / "relay_floor"
    done = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(binary), str(C_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{compiler} failed on {C_SOURCE}:\n{done.stderr}")
    return binary


# ---------------------------------------------------------------------------- load generator


@dataclass
class CaseResult:
    """The numbers of one (variant, N) run."""

    variant: str
    subscribers: int
    window_s: float = 0.0
    relay_cpu_s: float = 0.0
    cores: float = 0.0
    forwarded_packets: int = 0
    expected_packets: int = 0
    loss: float = 0.0
    """1 - forwarded / expected over the window, all sinks together."""
    worst_sink_loss: float = 0.0
    cpu_us_per_packet: float = math.nan
    system_share: float | None = None
    """Share of the relay's CPU spent in the kernel; None when too few ticks to tell (and
    sampled, so rough, on kernels with tick-based CPU accounting)."""
    pacing_late_max_ms: float = 0.0
    """Worst lateness of a frame's first send against its schedule (load generator)."""
    relay_received: int | None = None
    relay_sent: int | None = None
    relay_errors: int | None = None
    wakeups_per_frame: float | None = None
    """epoll wake-ups with data per frame sent, whole run (C relay only)."""
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


class Sinks:
    """N UDP sockets on loopback, drained by one thread that counts datagrams per socket."""

    def __init__(self, n: int) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SINK_RCVBUF)
            sock.bind((HOST, 0))
            sock.setblocking(False)
            self.sockets.append(sock)
        self.counts = [0] * n
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="sinks", daemon=True)

    @property
    def ports(self) -> list[int]:
        return [sock.getsockname()[1] for sock in self.sockets]

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        selector = selectors.DefaultSelector()
        for index, sock in enumerate(self.sockets):
            selector.register(sock, selectors.EVENT_READ, (sock, index))
        buffer = bytearray(MAX_DATAGRAM)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(DRAIN_POLL_S):
                    sock, index = key.data
                    while True:
                        try:
                            sock.recv_into(buffer)
                        except BlockingIOError:
                            break
                        self.counts[index] += 1
        finally:
            selector.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=DRAIN_POLL_S * 10)
        for sock in self.sockets:
            sock.close()


def _rtp_header(seq: int, frame: int, marker: bool) -> bytes:
    second = RTP_PAYLOAD_TYPE | (RTP_MARKER if marker else 0)
    timestamp = (frame * RTP_CLOCK_PER_FRAME) & 0xFFFFFFFF
    return struct.pack("!BBHII", RTP_VERSION_BYTE, second, seq & 0xFFFF, timestamp, PUBLISHER_SSRC)


def build_stream(frames: int, key: bytes | None) -> list[list[bytes]]:
    """``frames`` frames of RTP packets, SRTP-protected with ``key`` when given."""
    session = None
    overhead = 0
    if key is not None:
        session = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        probe = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        overhead = len(probe.protect(_rtp_header(0, 0, False))) - RTP_HEADER_BYTES
    payload = os.urandom(max(FRAME_DATAGRAMS))
    stream: list[list[bytes]] = []
    seq = 0
    for frame in range(frames):
        datagrams: list[bytes] = []
        for index, size in enumerate(FRAME_DATAGRAMS):
            marker = index == len(FRAME_DATAGRAMS) - 1
            packet = _rtp_header(seq, frame, marker) + payload[: size - RTP_HEADER_BYTES - overhead]
            datagrams.append(packet if session is None else session.protect(packet))
            seq += 1
        stream.append(datagrams)
    return stream


def process_cpu_ns(pid: int) -> int:
    """CPU time of process ``pid`` (all threads, user + system) in ns, from its CPU clock."""
    clock = ((~pid) << 3) | 2  # the kernel's CPUCLOCK_SCHED process clock of pid
    return time.clock_gettime_ns(clock)


@dataclass
class _Snapshot:
    at: float
    cpu_ns: int
    user_s: float
    system_s: float
    sink_counts: list[int]


def _snapshot(pid: int, process: Any, sinks: Sinks) -> _Snapshot:
    times = process.cpu_times()
    return _Snapshot(
        time.monotonic(), process_cpu_ns(pid), times.user, times.system, [*sinks.counts]
    )


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def pace(
    stream: list[list[bytes]],
    target: tuple[str, int],
    window_start_frame: int,
    snapshot: Callable[[], _Snapshot],
) -> tuple[_Snapshot, _Snapshot, float]:
    """Send ``stream`` at `FPS`; snapshots half a period before frames `window_start_frame`
    and one past the last. Returns both and the worst lateness of a frame (s)."""
    period = 1 / FPS
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    snapshots: list[_Snapshot] = []
    late = 0.0
    try:
        start = time.monotonic() + period
        for k in range(len(stream) + 1):
            if k in (window_start_frame, len(stream)):
                _sleep_until(start + (k - 0.5) * period)
                snapshots.append(snapshot())
            if k == len(stream):
                break
            due = start + k * period
            _sleep_until(due)
            late = max(late, time.monotonic() - due)
            for datagram in stream[k]:
                sender.sendto(datagram, target)
    finally:
        sender.close()
    return snapshots[0], snapshots[-1], late


def _read_port(relay: subprocess.Popen[str]) -> int:
    assert relay.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(relay.stdout, selectors.EVENT_READ)
        if not selector.select(RELAY_START_TIMEOUT):
            raise RuntimeError(f"relay did not start within {RELAY_START_TIMEOUT} s")
    line = relay.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"relay did not start: {line!r}")
    return int(line.split()[1])


def _stop(relay: subprocess.Popen[str]) -> str:
    """SIGTERM the relay (by pid), SIGKILL it if it lingers; its remaining stdout."""
    if relay.poll() is None:
        relay.send_signal(signal.SIGTERM)
    try:
        out, _ = relay.communicate(timeout=RELAY_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        relay.kill()
        out, _ = relay.communicate()
    return out or ""


def _relay_command(
    variant: str, ports: list[int], key: bytes, lifetime: float, c_binary: Path | None
) -> list[str]:
    if variant in C_VARIANTS:
        assert c_binary is not None
        destinations = [f"{HOST}:{port}" for port in ports]
        return [str(c_binary), str(lifetime), C_VARIANTS[variant], *destinations]
    return [
        sys.executable, "-m", "scripts.bench.relay_floor", "--worker", variant,
        "--lifetime", str(lifetime), "--dest", ",".join(map(str, ports)), "--key", key.hex(),
    ]  # fmt: skip


def run_case(
    variant: str,
    n: int,
    seconds: float,
    warmup: float,
    relay_cpu: int | None,
    c_binary: Path | None,
) -> CaseResult:
    """One relay process of ``variant`` forwarding to ``n`` sinks; measured over ``seconds``."""
    if variant in C_VARIANTS and c_binary is None:
        return CaseResult(variant, n, skipped="no C compiler (cc, gcc, clang or $CC)")
    key = os.urandom(SRTP_KEY_BYTES)
    warmup_frames = max(1, round(warmup * FPS))
    window_frames = max(1, round(seconds * FPS))
    stream = build_stream(warmup_frames + window_frames, key if variant.endswith("srtp") else None)
    sinks = Sinks(n)
    lifetime = warmup + seconds + RELAY_LIFETIME_MARGIN
    command = _relay_command(variant, sinks.ports, key, lifetime, c_binary)
    relay: subprocess.Popen[str] | None = None
    result = CaseResult(variant, n)
    try:
        sinks.start()
        relay = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
        if relay_cpu is not None:
            os.sched_setaffinity(relay.pid, {relay_cpu})
        port = _read_port(relay)
        pid = relay.pid
        process = psutil.Process(pid)
        first, last, late = pace(
            stream, (HOST, port), warmup_frames, lambda: _snapshot(pid, process, sinks)
        )
        time.sleep(DRAIN_POLL_S)  # let the drain thread count the last frame (not in window)
    finally:
        done = _stop(relay) if relay is not None else ""
        sinks.close()
    window = last.at - first.at
    cpu = (last.cpu_ns - first.cpu_ns) / NS_PER_S
    forwarded = sum(last.sink_counts) - sum(first.sink_counts)
    per_sink_expected = window_frames * len(FRAME_DATAGRAMS)
    per_sink = [b - a for a, b in zip(first.sink_counts, last.sink_counts, strict=True)]
    result.window_s = round(window, 3)
    result.relay_cpu_s = round(cpu, 6)
    result.cores = round(cpu / window, 5)
    result.forwarded_packets = forwarded
    result.expected_packets = per_sink_expected * n
    result.loss = round(1 - forwarded / result.expected_packets, 4)
    result.worst_sink_loss = round(1 - min(per_sink) / per_sink_expected, 4)
    result.cpu_us_per_packet = round(cpu / forwarded * US_PER_S, 2) if forwarded else math.nan
    ticks = os.sysconf("SC_CLK_TCK")
    user, system = last.user_s - first.user_s, last.system_s - first.system_s
    if (user + system) * ticks >= MIN_TICKS_FOR_SPLIT:
        result.system_share = round(system / (user + system), 2)
    result.pacing_late_max_ms = round(late * MS_PER_S, 2)
    for line in done.splitlines():
        if line.startswith("DONE "):
            received, sent, errors, *wakeups = (int(x) for x in line.split()[1:])
            result.relay_received, result.relay_sent, result.relay_errors = received, sent, errors
            if wakeups:
                result.wakeups_per_frame = round(wakeups[0] / len(stream), 2)
            if errors:
                result.notes.append(f"{errors} relay errors")
    if relay is not None and relay.returncode not in (0, -signal.SIGTERM):
        result.notes.append(f"relay exit status {relay.returncode}")
    return result


def print_table(results: list[CaseResult]) -> None:
    print(
        f"{'variant':<16} {'N':>3} {'us/pkt':>8} {'cores':>7} {'pkts':>7} {'loss%':>6} "
        f"{'worst%':>6} {'sys%':>4} {'wake/f':>6} {'late ms':>7}"
    )
    for r in results:
        if r.skipped is not None:
            print(f"{r.variant:<16} {r.subscribers:>3}  skipped: {r.skipped}")
            continue
        system = "n/a" if r.system_share is None else f"{r.system_share * 100:.0f}"
        wakeups = "-" if r.wakeups_per_frame is None else f"{r.wakeups_per_frame:.2f}"
        print(
            f"{r.variant:<16} {r.subscribers:>3} {r.cpu_us_per_packet:>8.2f} {r.cores:>7.4f} "
            f"{r.forwarded_packets:>7} {r.loss * 100:>6.2f} {r.worst_sink_loss * 100:>6.2f} "
            f"{system:>4} {wakeups:>6} {r.pacing_late_max_ms:>7.2f}"
            + (f"  {'; '.join(r.notes)}" if r.notes else "")
        )


def _cpus(no_pin: bool) -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if no_pin or len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    relay_cpu, loadgen_cpu = _cpus(args.no_pin)
    if loadgen_cpu is not None:
        os.sched_setaffinity(0, {loadgen_cpu})  # before any thread: the drain threads inherit
    runs: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="relay_floor-") as directory:
        needs_c = any(v in C_VARIANTS for v in args.variants)
        c_binary = compile_relay(Path(directory)) if needs_c else None
        for repetition in range(args.repeat):
            for n in args.n:
                for variant in args.variants:
                    print(f"-- run {repetition + 1}: {variant} N={n}", file=sys.stderr, flush=True)
                    runs.append(
                        run_case(variant, n, args.seconds, args.warmup, relay_cpu, c_binary)
                    )
    results = report_medians(
        runs,
        [(variant, n) for n in args.n for variant in args.variants],
        lambda r: (r.variant, r.subscribers),
        lambda r: r.cpu_us_per_packet,
        print_table,
    )
    return {
        "config": {
            "n": args.n,
            "variants": args.variants,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "repeat": args.repeat,
            "relay_cpu": relay_cpu,
            "loadgen_cpu": loadgen_cpu,
            "fps": FPS,
            "frame_datagrams": list(FRAME_DATAGRAMS),
        },
        "results": [asdict(r) for r in results],
        "runs": [asdict(r) for r in runs],
    }


def _csv(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=lambda s: [int(x) for x in _csv(s)], default=[1, 10, 50])
    parser.add_argument("--variants", type=_csv, default=list(VARIANTS), help=", ".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs, medians reported")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--no-pin", action="store_true", help="do not pin relay and generator")
    parser.add_argument("--json", default=None, help="write results to this file")
    worker = parser.add_argument_group("relay worker (started by the generator)")
    worker.add_argument("--worker", choices=PY_VARIANTS, default=None)
    worker.add_argument("--dest", type=lambda s: [int(x) for x in _csv(s)], default=[])
    worker.add_argument("--key", type=bytes.fromhex, default=None, help="inbound SRTP key, hex")
    worker.add_argument("--lifetime", type=float, default=60.0, help="exit after this (s)")
    args = parser.parse_args()
    if args.worker is not None:
        if args.worker == "py-asyncio-srtp" and args.key is None:
            parser.error("--worker py-asyncio-srtp needs --key")
        asyncio.run(_worker(args.worker, args.dest, args.key, args.lifetime))
        return
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

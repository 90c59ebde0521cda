"""The real class, selective forwarding against everyone-gets-everything.

One run is one mode of one class (a teacher and `students`) held for `seconds` on a fresh
server process, driven by the load test (`scripts.load.runner.LoadRun`) with the server's
CPU read from /proc of its PID:

- ``selective``: every camera in two layers, every microphone muted but the teacher's and
  `unmuted - 1` students', the teacher sharing a screen, everyone subscribing like the
  page (teacher camera high and screen, `tiles` student cameras low, the rest off);
- ``all``: today's page: one camera layer, no ``SUBSCRIPTION``, every microphone on, no
  screen (today's page cannot share one).

`result_of` keeps the numbers the comparison needs; `comparison` sets the modes side by
side, and refuses when the load generator was near a core (it, not the server, would
then be what was measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from scripts.bench.medians import median_run
from scripts.bench.report import _fmt
from scripts.load.loadgen_guard import refusal
from scripts.load.options import LoadOptions
from scripts.load.progress import Progress
from scripts.load.runner import LoadRun

MODES = ("selective", "all")


@dataclass(frozen=True)
class ClassSettings:
    """What both modes share."""

    students: int = 30
    seconds: float = 300.0
    tiles: int = 8
    unmuted: int = 3
    """Microphones on in selective mode, the teacher's first."""
    high_bitrate: int = 500_000
    low_bitrate: int = 120_000
    muted_keep_sending: bool = False
    settle_max: float = 30.0
    ramp: float = 5.0
    progress: bool = False


def load_options(mode: str, url: str, server_pid: int, settings: ClassSettings) -> LoadOptions:
    """The load test's options for one mode of the class."""
    base = LoadOptions(
        url=url,
        classes=1,
        students=settings.students,
        bitrate=settings.high_bitrate,
        duration=settings.seconds,
        settle_max=settings.settle_max,
        ramp=settings.ramp,
        server_pid=server_pid,
        progress=settings.progress,
    )
    if mode == "all":
        return base.validate()
    if mode != "selective":
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    return replace(
        base,
        layers=2,
        low_bitrate=settings.low_bitrate,
        screen=True,
        subscribe="page",
        tiles=settings.tiles,
        unmuted=settings.unmuted,
        muted_keep_sending=settings.muted_keep_sending,
    ).validate()


@dataclass
class ClassResult:
    """One run of one mode: the numbers reported, and the load test's whole summary."""

    mode: str
    repetition: int
    server_cores: float | None
    us_per_packet: float | None
    forwarded_packets: int | None
    student_kbps: dict[str, Any]
    student_bytes: int
    students_measured: int
    latency_p95_ms: float | None
    first_frame_p95_s: float | None
    failed_connections: int
    failures: list[str]
    loadgen_cores: float | None
    window_s: float
    aborted: str | None
    summary: dict[str, Any] = field(repr=False)

    @property
    def bytes_per_student_second(self) -> float | None:
        """Downstream bytes per student per second of the window."""
        if not self.students_measured or self.window_s <= 0:
            return None
        return self.student_bytes / self.students_measured / self.window_s


def result_of(mode: str, repetition: int, summary: dict[str, Any]) -> ClassResult:
    server, joins = summary["server"], summary["joins"]
    downstream = summary["downstream"]
    failures = [f"{f['role']} {f['user']}: {f['reason']}" for f in joins["failures"]]
    failures += [f"{e['user']}: {e['error']}" for e in summary["peer_errors"]]
    failures += [
        f"setup {f['step']}: {f['reason']}" for f in summary["participants"]["setup_failures"]
    ]
    return ClassResult(
        mode=mode,
        repetition=repetition,
        server_cores=server.get("cpu_cores_mean"),
        us_per_packet=server.get("cpu_us_per_received_packet"),
        forwarded_packets=server.get("forwarded_packets"),
        student_kbps=downstream["student_kbps"],
        student_bytes=downstream["student_bytes"],
        students_measured=downstream["student_kbps"]["count"],
        latency_p95_ms=summary["latency_ms"]["p95"],
        first_frame_p95_s=summary["first_frame_s"]["p95"],
        failed_connections=len(failures),
        failures=failures,
        loadgen_cores=summary["loadgen_cores_mean"],
        window_s=summary["window_s"],
        aborted=summary["aborted"],
        summary=summary,
    )


async def run_mode(
    mode: str, repetition: int, url: str, server_pid: int, settings: ClassSettings
) -> ClassResult:
    """Hold the class in `mode` on the server at `url` (process `server_pid`)."""
    options = load_options(mode, url, server_pid, settings)
    summary = await LoadRun(options, Progress(options.progress)).run()
    return result_of(mode, repetition, summary)


def medians(results: list[ClassResult]) -> dict[str, ClassResult]:
    """Per mode, the run with the median server cores."""
    return {
        mode: median_run(
            [r for r in results if r.mode == mode], lambda r: r.server_cores or float("inf")
        )
        for mode in MODES
        if any(r.mode == mode for r in results)
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def comparison(results: list[ClassResult]) -> dict[str, Any]:
    """Selective against all, from each mode's median run; ``refused`` says why there is
    none (the load generator above 0.85 cores, a run aborted, connections failed, a mode
    missing)."""
    busy = refusal((f"{r.mode} #{r.repetition + 1}", r.loadgen_cores) for r in results)
    aborted = [r for r in results if r.aborted]
    failed = [r for r in results if r.failed_connections]
    median = medians(results)
    refused = None
    if busy:
        refused = busy
    elif aborted:
        refused = "a run was aborted: " + "; ".join(f"{r.mode}: {r.aborted}" for r in aborted)
    elif failed:
        refused = "connections failed in " + ", ".join(
            f"{r.mode} #{r.repetition + 1} ({r.failed_connections})" for r in failed
        )
    elif set(median) != set(MODES):
        refused = "both modes are needed"
    if refused is not None:
        return {"refused": refused}
    selective, everything = median["selective"], median["all"]
    return {
        "refused": None,
        "server_cores": _ratio(selective.server_cores, everything.server_cores),
        "us_per_packet": _ratio(selective.us_per_packet, everything.us_per_packet),
        "student_kbps_p50": _ratio(selective.student_kbps["p50"], everything.student_kbps["p50"]),
        "bytes_per_student_second": _ratio(
            selective.bytes_per_student_second, everything.bytes_per_student_second
        ),
    }


def table(results: list[ClassResult], compared: dict[str, Any]) -> str:
    """Every run, then the ratios selective / all (or why there are none)."""
    lines = [
        f"{'mode':<10} {'#':>2} {'cores':>6} {'us/pkt':>7} {'student kbps p50/p95/max':>25} "
        f"{'hop p95':>8} {'1st frame p95':>13} {'failed':>6} {'loadgen':>7}"
    ]
    for r in results:
        kbps = r.student_kbps
        lines.append(
            f"{r.mode:<10} {r.repetition + 1:>2} {_fmt(r.server_cores, 3):>6} "
            f"{_fmt(r.us_per_packet, 1):>7} "
            f"{_fmt(kbps['p50'], 0) + '/' + _fmt(kbps['p95'], 0) + '/' + _fmt(kbps['max'], 0):>25} "
            f"{_fmt(r.latency_p95_ms, 1) + ' ms':>8} {_fmt(r.first_frame_p95_s, 2) + ' s':>13} "
            f"{r.failed_connections:>6} {_fmt(r.loadgen_cores, 2):>7}"
            + (f"  ABORTED: {r.aborted}" if r.aborted else "")
        )
        lines += [f"    {failure}" for failure in r.failures[:5]]
    lines.append("")
    if compared["refused"]:
        lines.append(f"no comparison: {compared['refused']}")
    else:
        lines.append(
            "selective / all (median runs): "
            f"server cores x{_fmt(compared['server_cores'], 2)}, "
            f"CPU per forwarded packet x{_fmt(compared['us_per_packet'], 2)}, "
            f"student downstream p50 x{_fmt(compared['student_kbps_p50'], 2)}, "
            f"bytes per student x{_fmt(compared['bytes_per_student_second'], 2)}"
        )
    return "\n".join(lines)

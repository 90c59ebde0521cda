"""What a soak watches on the server, and whether it grew.

One `SoakSample` every few seconds: the server process's resident memory, open file
descriptors, sockets and threads (psutil, same machine), its event loop's tasks, the
participants in rooms and the internal errors answered (its ``/metrics``). `growth` sets
the median of a span right after the warm-up against the median of the last span of the
run: a leak grows steadily, so the end stands above the start; churn only makes the
series noisy around a level.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from scripts.load.plot import pyplot

WATCHED = ("rss_mb", "fds", "sockets", "tasks", "threads")
"""The series that must not grow."""


@dataclass(frozen=True)
class SoakSample:
    """The server at one moment of the soak."""

    at: float
    """Seconds since the soak's window started."""
    rss_mb: float
    fds: int
    sockets: int
    threads: int
    tasks: float | None
    participants: float | None
    internal_errors: float
    recording: bool


def process_state(pid: int) -> dict[str, float]:
    """Resident memory (MB), open file descriptors, inet sockets and threads of `pid`."""
    process = psutil.Process(pid)
    with process.oneshot():
        return {
            "rss_mb": round(process.memory_info().rss / 1e6, 1),
            "fds": process.num_fds(),
            "sockets": len(process.net_connections(kind="inet")),
            "threads": process.num_threads(),
        }


def scraped(text: str) -> dict[str, float]:
    """From a ``/metrics`` text: the event loop's tasks, participants in rooms, and the
    internal errors answered (every channel)."""
    found = {"tasks": 0.0, "participants": 0.0, "internal_errors": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "classroom_event_loop_tasks":
                found["tasks"] = sample.value
            elif sample.name == "classroom_participants" and sample.labels.get("media") == (
                "connected"
            ):
                found["participants"] = sample.value
            elif sample.name == "classroom_errors_total" and sample.labels.get("type") == (
                "InternalError"
            ):
                found["internal_errors"] += sample.value
    return found


def _median_in(
    samples: Sequence[SoakSample],
    name: str,
    start: float,
    end: float,
    like: Callable[[SoakSample], bool] = lambda sample: True,
) -> float | None:
    values = [
        float(v)
        for s in samples
        if start <= s.at <= end and like(s) and (v := getattr(s, name)) is not None
    ]
    return statistics.median(values) if values else None


MIN_LIKE_SAMPLES = 3
"""Samples a window needs in the like-for-like state, else the window is judged whole."""


def growth(
    samples: Sequence[SoakSample], warmup: float, span: float, limit: float = 0.05
) -> dict[str, Any]:
    """Per watched series: the median over `span` seconds after `warmup`, the median
    over the last `span` seconds, their ratio less one, and whether that is within
    `limit`; ``passed`` when every series is.

    Like for like: under churn, descriptors and tasks rise and fall with who is in the
    room at the moment of a sample (a rejoin in flight holds a socket or two fewer), and
    a recording adds its writer. Each median is therefore taken over the samples with the
    room full (the most members seen) and no recording running; a window too sparse in
    them (fewer than `MIN_LIKE_SAMPLES`) widens, to 2 then 3 spans, and if that is not
    enough every sample is judged. The medians over every sample are reported too."""
    if not samples:
        return {"passed": False, "reason": "no samples"}
    end = samples[-1].at
    if end - span < warmup + span:
        return {"passed": False, "reason": f"the run is shorter than warm-up + 2 x {span:.0f} s"}
    full = max((s.participants for s in samples if s.participants is not None), default=None)

    def steady(sample: SoakSample) -> bool:
        return sample.participants == full and not sample.recording

    def enough(start: float, stop: float) -> bool:
        return sum(1 for s in samples if start <= s.at <= stop and steady(s)) >= MIN_LIKE_SAMPLES

    # Windows widen (up to 3 spans, never overlapping) until each holds enough steady samples.
    wide = next(
        (
            k * span
            for k in (1, 2, 3)
            if warmup + k * span <= end - k * span
            and enough(warmup, warmup + k * span)
            and enough(end - k * span, end)
        ),
        None,
    )
    like_for_like = wide is not None
    window = wide if wide is not None else span
    rows: dict[str, Any] = {}
    for name in WATCHED:
        like = steady if like_for_like else _any
        first = _median_in(samples, name, warmup, warmup + window, like)
        last = _median_in(samples, name, end - window, end, like)
        ratio = None if first is None or last is None or first == 0 else last / first - 1
        rows[name] = {
            "after_warmup": first,
            "at_end": last,
            "growth": None if ratio is None else round(ratio, 4),
            "within": ratio is not None and ratio <= limit,
            "all_samples": [
                _median_in(samples, name, warmup, warmup + span),
                _median_in(samples, name, end - span, end),
            ],
        }
    return {
        "passed": all(row["within"] for row in rows.values()),
        "limit": limit,
        "warmup_s": warmup,
        "span_s": span,
        "like_for_like": (
            {"participants": full, "recording": False, "window_s": window}
            if like_for_like
            else None
        ),
        "series": rows,
    }


def _any(sample: SoakSample) -> bool:
    return True


def series_table(samples: Sequence[SoakSample], every: int = 1) -> str:
    """Every `every`-th sample as a row."""
    lines = [
        f"{'t (s)':>7} {'RSS MB':>7} {'fds':>5} {'sockets':>7} {'threads':>7} {'tasks':>6} "
        f"{'in room':>7} {'errors':>6} rec"
    ]
    for sample in samples[::every]:
        tasks = "-" if sample.tasks is None else f"{sample.tasks:.0f}"
        room = "-" if sample.participants is None else f"{sample.participants:.0f}"
        lines.append(
            f"{sample.at:>7.0f} {sample.rss_mb:>7.1f} {sample.fds:>5} {sample.sockets:>7} "
            f"{sample.threads:>7} {tasks:>6} {room:>7} {sample.internal_errors:>6.0f} "
            f"{'on' if sample.recording else ''}"
        )
    return "\n".join(lines)


def plot_series(samples: Sequence[SoakSample], path: Path, title: str) -> None:
    """One panel per watched series (and participants in rooms) against time; raises
    `scripts.load.plot.PlotUnavailable` without matplotlib."""
    plt = pyplot()
    names = (*WATCHED, "participants")
    figure, axes = plt.subplots(len(names), 1, sharex=True, figsize=(9, 2 * len(names)))
    minutes = [s.at / 60 for s in samples]
    for axis, name in zip(axes, names, strict=True):
        values = [getattr(s, name) for s in samples]
        axis.plot(minutes, values, linewidth=1)
        for sample, minute in zip(samples, minutes, strict=True):
            if sample.recording:
                axis.axvspan(minute, minute + 0.01, color="tab:red", alpha=0.05)
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes (red: recording)")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def samples_json(samples: Sequence[SoakSample]) -> list[dict[str, Any]]:
    return [asdict(sample) for sample in samples]

"""A PNG of server CPU and hop latency against the number of forwarded video streams."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from scripts.load.monitor import TimelinePoint


class PlotUnavailable(Exception):
    """matplotlib (the `plot` extra) is not installed."""


def pyplot() -> ModuleType:
    """matplotlib's pyplot drawing to files; raises `PlotUnavailable` without the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'classroom-sfu[plot]'"
        ) from None
    return plt


def plot_timeline(points: Sequence[TimelinePoint], path: Path, title: str) -> None:
    """Two panels sharing the x axis (video streams the server forwards): server CPU in
    cores, and hop latency p50/p95 in ms. One dot per second of the run."""
    plt = pyplot()
    figure, (cpu_axis, latency_axis) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    cpu = [(p.streams, p.server_cores) for p in points if p.server_cores is not None]
    if cpu:
        cpu_axis.plot(*zip(*cpu, strict=True), "o", markersize=3, label="server")
    loadgen = [(p.streams, p.loadgen_cores) for p in points]
    if loadgen:
        cpu_axis.plot(*zip(*loadgen, strict=True), "x", markersize=3, alpha=0.5, label="load gen")
    cpu_axis.set_ylabel("CPU (cores)")
    cpu_axis.legend(loc="upper left")
    cpu_axis.grid(alpha=0.3)
    for attribute, label in (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95")):
        found = [(p.streams, getattr(p, attribute)) for p in points if getattr(p, attribute)]
        if found:
            latency_axis.plot(*zip(*found, strict=True), "o", markersize=3, label=label)
    latency_axis.set_ylabel("hop latency (ms)")
    latency_axis.set_xlabel("video streams forwarded by the server")
    latency_axis.legend(loc="upper left")
    latency_axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)

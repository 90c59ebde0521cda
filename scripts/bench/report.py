"""Medians over interleaved runs, the per-system comparison, and the printed tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from scripts.bench.measure import RunResult
from scripts.bench.medians import median_run
from scripts.load.loadgen_guard import generator_busy, refusal

OURS = "ours"


def median_runs(runs: Iterable[RunResult]) -> list[RunResult]:
    """Per (system, scenario, n): the run with the median CPU per packet."""
    groups: dict[tuple[str, str, int], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.system, run.scenario, run.n), []).append(run)
    return [
        median_run(groups[key], lambda r: r.us_per_packet or float("inf"))
        for key in sorted(groups, key=lambda k: (k[1], k[2], k[0]))
    ]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def runs_table(results: list[RunResult]) -> str:
    header = (
        f"{'system':<13} {'scenario':<9} {'N':>4} {'flow':>9} {'cores':>6} {'us/pkt':>7} "
        f"{'fps':>5} {'fps p5':>6} {'loss%':>6} {'p50ms':>6} {'p95ms':>6} {'MB/part':>7} "
        f"{'loadgen':>7}"
    )
    lines = [header]
    for r in results:
        loss = None if r.loss is None else r.loss * 100
        lines.append(
            f"{r.system:<13} {r.scenario:<9} {r.n:>4} "
            f"{f'{r.streams_flowing}/{r.streams_expected}':>9} {r.server_cores:>6.3f} "
            f"{_fmt(r.us_per_packet):>7} {_fmt(r.fps_mean):>5} {_fmt(r.fps_p5):>6} "
            f"{_fmt(loss, 2):>6} {_fmt(r.latency_p50_ms, 2):>6} {_fmt(r.latency_p95_ms, 2):>6} "
            f"{_fmt(r.mb_per_participant, 2):>7} {r.loadgen_cores:>7.2f}"
            + (f"  {'; '.join(r.notes)}" if r.notes else "")
        )
    return "\n".join(lines)


def marginal_us_per_packet(results: list[RunResult], system: str) -> float | None:
    """CPU per extra forwarded packet: least-squares slope of server cores against packet
    rate over the fan-out runs with N >= 50 (fixed costs drop out)."""
    points = [
        (r.packets / r.window_s, r.server_cores)
        for r in results
        if r.system == system and r.scenario == "fanout" and r.packets and r.n >= 50
    ]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread <= 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return round(slope * 1e6, 2)


def capacity(results: list[RunResult], system: str) -> dict[str, Any]:
    """Largest fan-out holding 30 fps with < 1 % loss on the server's one core, and a
    CPU-based estimate from the largest passing run (extrapolated linearly to 1 core)."""
    fanout = sorted(
        (r for r in results if r.system == system and r.scenario == "fanout"), key=lambda r: r.n
    )
    # A run whose generator was busy says nothing about the server either way.
    measured = [r for r in fanout if not generator_busy(r.loadgen_cores)]
    passing = [r for r in measured if r.holds_target and r.server_cores < 0.97]
    failing = [r for r in measured if not r.holds_target]
    best = passing[-1] if passing else None
    estimate = None
    if best is not None and best.server_cores > 0:
        estimate = int(best.n / best.server_cores)
    limited_by = None
    if any(generator_busy(r.loadgen_cores) for r in fanout):
        limited_by = "load generator"
    elif best is not None and not any(r.n > best.n for r in failing):
        limited_by = "load generator / sizes tried"
    return {
        "measured": best.n if best else 0,
        "first_failing": min((r.n for r in failing if best is None or r.n > best.n), default=None),
        "cpu_estimate": estimate,
        "limited_by": limited_by,
    }


def comparison_refusal(results: list[RunResult], sizes: Iterable[int]) -> str | None:
    """Why the systems cannot be compared (`refusal`): a load generator above its limit in
    a run the comparison uses, a fan-out at one of the interleaved `sizes` or a class."""
    wanted = set(sizes)
    return refusal(
        (f"{r.system} {r.scenario} N={r.n}", r.loadgen_cores)
        for r in results
        if r.scenario == "classroom" or r.n in wanted
    )


def comparison(
    results: list[RunResult], floor: dict[str, Any] | None, reference_n: int | None = None
) -> list[dict[str, Any]]:
    """One row per system: the numbers the issue asks for, and the ratio to ours.

    CPU per packet and memory are compared at ``reference_n`` (the largest interleaved
    size; default the largest size both ran), or the largest size a system holds below it.
    """
    systems = sorted({r.system for r in results}, key=lambda s: (s != OURS, s))
    fanout_sizes = sorted({r.n for r in results if r.scenario == "fanout"})
    rows: list[dict[str, Any]] = []
    ours_by_n = {r.n: r for r in results if r.system == OURS and r.scenario == "fanout"}
    for system in systems:
        mine = {r.n: r for r in results if r.system == system and r.scenario == "fanout"}
        common = [
            n
            for n in fanout_sizes
            if n in mine and n in ours_by_n and n > 1 and (reference_n is None or n <= reference_n)
        ]
        at = max(common) if common else (max(mine) if mine else None)
        reference = mine.get(at) if at is not None else None
        ours = ours_by_n.get(at) if at is not None else None
        classroom = [r for r in results if r.system == system and r.scenario == "classroom"]
        latency_run = mine.get(50) or reference
        row: dict[str, Any] = {
            "system": system,
            "at_n": at,
            "us_per_packet": reference.us_per_packet if reference else None,
            "marginal_us_per_packet": marginal_us_per_packet(results, system),
            "capacity": capacity(results, system),
            "latency_at_n": latency_run.n if latency_run else None,
            "latency_p50_ms": latency_run.latency_p50_ms if latency_run else None,
            "latency_p95_ms": latency_run.latency_p95_ms if latency_run else None,
            "mb_per_participant": reference.mb_per_participant if reference else None,
            "ratio_to_ours": (
                round(reference.us_per_packet / ours.us_per_packet, 2)
                if reference and ours and reference.us_per_packet and ours.us_per_packet
                else None
            ),
            "classroom": [asdict(r) for r in classroom],
        }
        rows.append(row)
    if floor is not None:
        ours_reference = rows[0]["us_per_packet"] if rows and rows[0]["system"] == OURS else None
        us = floor["protect_and_send"]["us_per_packet"]
        rows.append(
            {
                "system": "floor (SRTP+sendto)",
                "us_per_packet": round(us, 2),
                "protect_only_us": round(floor["protect_only"]["us_per_packet"], 2),
                "send_only_us": round(floor["send_only"]["us_per_packet"], 2),
                "ratio_to_ours": round(us / ours_reference, 2) if ours_reference else None,
            }
        )
    return rows


def comparison_table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'system':<20} {'us/pkt':>7} {'@N':>4} {'marg.':>6} {'max subs 30fps':>16} "
        f"{'hop p50/p95 ms':>15} {'MB/part':>7} {'x ours':>7}"
    )
    lines = [header]
    for row in rows:
        cap = row.get("capacity")
        if cap:
            measured = f"{cap['measured']}" + ("+" if cap["limited_by"] else "")
            estimate = f" (~{cap['cpu_estimate']})" if cap["cpu_estimate"] else ""
            capacity_text = measured + estimate
        else:
            capacity_text = "-"
        latency = (
            f"{_fmt(row.get('latency_p50_ms'), 1)}/{_fmt(row.get('latency_p95_ms'), 1)}"
            if "latency_p50_ms" in row
            else "-"
        )
        lines.append(
            f"{row['system']:<20} {_fmt(row.get('us_per_packet'), 2):>7} "
            f"{_fmt(row.get('at_n')):>4} {_fmt(row.get('marginal_us_per_packet'), 1):>6} "
            f"{capacity_text:>16} {latency:>15} {_fmt(row.get('mb_per_participant'), 2):>7} "
            f"{_fmt(row.get('ratio_to_ours'), 2):>7}"
        )
        for room in row.get("classroom") or []:
            loss = None if room["loss"] is None else room["loss"] * 100
            lines.append(
                f"  classroom of {room['n']}, all cameras: "
                f"{room['streams_flowing']}/{room['streams_expected']} streams, "
                f"{room['server_cores']:.2f} cores, {_fmt(room['us_per_packet'], 2)} us/pkt, "
                f"fps p5 {_fmt(room['fps_p5'])}, loss {_fmt(loss, 2)}%, "
                f"hop p50/p95 {_fmt(room['latency_p50_ms'], 1)}/"
                f"{_fmt(room['latency_p95_ms'], 1)} ms, loadgen {room['loadgen_cores']:.2f}"
            )
    return "\n".join(lines)

"""The median of interleaved repetitions, shared by the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

Run = TypeVar("Run")


def median_run(same: Iterable[Run], cost: Callable[[Run], float]) -> Run:
    """Of repetitions of one case, the run with the median `cost` (the upper one of two)."""
    ranked = sorted(same, key=cost)
    return ranked[len(ranked) // 2]


def report_medians(
    runs: list[Run],
    cases: Iterable[Hashable],
    case_of: Callable[[Run], Hashable],
    cost: Callable[[Run], float],
    print_table: Callable[[list[Run]], None],
) -> list[Run]:
    """Print every run (when cases were repeated), then the median run of each case in
    `cases` that has runs, in that order; returns those median runs."""
    cases = list(cases)
    if len(runs) > len(cases):
        print("all runs:")
        print_table(runs)
        print("medians:")
    results = [
        median_run((r for r in runs if case_of(r) == case), cost)
        for case in cases
        if any(case_of(r) == case for r in runs)
    ]
    print_table(results)
    return results

"""The median of interleaved repetitions, shared by the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

Run = TypeVar("Run")


def median_run(same: Iterable[Run], cost: Callable[[Run], float]) -> Run:
    """Of repetitions of one case, the run with the median `cost` (the upper one of two)."""
    ranked = sorted(same, key=cost)
    return ranked[len(ranked) // 2]

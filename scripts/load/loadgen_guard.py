"""When a measurement measured its load generator instead of the server.

Above `MAX_LOADGEN_CORES` of its core the synthetic side is what runs late: fps fall,
loss and hop latency rise for whichever server it drives, and a comparison would compare
the generator with itself. Every harness that reports a comparison asks `refusal` first.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_LOADGEN_CORES = 0.85


def generator_busy(cores: float | None) -> bool:
    """The generator was above `MAX_LOADGEN_CORES` (or its CPU was not measured)."""
    return cores is None or cores > MAX_LOADGEN_CORES


def refusal(runs: Iterable[tuple[str, float | None]]) -> str | None:
    """Why there is no comparison of these ``(run label, generator cores)``, or `None`."""
    busy = [(label, cores) for label, cores in runs if generator_busy(cores)]
    if not busy:
        return None
    listed = ", ".join(f"{label} ({'not measured' if c is None else c})" for label, c in busy)
    return (
        f"the load generator was above {MAX_LOADGEN_CORES} cores in {listed}: "
        "the numbers would measure it, not the server"
    )

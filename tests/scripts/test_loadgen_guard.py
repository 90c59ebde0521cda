"""No comparison from a run whose load generator was above 0.85 of its core: the guard's
rule, and how the side-by-side report and the class benchmark apply it (pure logic)."""

from __future__ import annotations

from scripts.bench.measure import RunResult
from scripts.bench.report import capacity, comparison_refusal
from scripts.load.loadgen_guard import MAX_LOADGEN_CORES, generator_busy, refusal


def test_the_limit_itself_is_allowed_above_it_or_unmeasured_is_not() -> None:
    assert MAX_LOADGEN_CORES == 0.85
    assert not generator_busy(0.5)
    assert not generator_busy(0.85)
    assert generator_busy(0.851)
    assert generator_busy(None)


def test_refusal_names_every_busy_run() -> None:
    assert refusal([("a", 0.4), ("b", 0.85)]) is None
    reason = refusal([("a", 0.4), ("selective #1", 0.91), ("all #2", None)])
    assert reason is not None
    assert "above 0.85 cores" in reason
    assert "selective #1 (0.91)" in reason
    assert "all #2 (not measured)" in reason
    assert "a (" not in reason


def _run(n: int, loadgen: float, scenario: str = "fanout", *, holds: bool = True) -> RunResult:
    return RunResult(
        "ours",
        scenario,
        n,
        streams_expected=n,
        streams_flowing=n,
        server_cores=0.3,
        fps_p5=30.0 if holds else 10.0,
        loss=0.0,
        loadgen_cores=loadgen,
    )


def test_side_by_side_refuses_for_interleaved_sizes_and_classes_only() -> None:
    runs = [_run(10, 0.2), _run(100, 0.5), _run(600, 0.95)]  # 600: a capacity probe
    assert comparison_refusal(runs, [10, 100]) is None
    assert "ours fanout N=100 (0.9)" in str(comparison_refusal([_run(100, 0.9)], [10, 100]))
    classroom = _run(31, 0.88, "classroom")
    assert "ours classroom N=31 (0.88)" in str(comparison_refusal([*runs, classroom], [10]))


def test_capacity_ignores_runs_that_measured_the_generator() -> None:
    runs = [_run(300, 0.6), _run(400, 0.9, holds=False)]
    found = capacity(runs, "ours")
    assert found["measured"] == 300
    assert found["first_failing"] is None  # the failing run measured the generator
    assert found["limited_by"] == "load generator"

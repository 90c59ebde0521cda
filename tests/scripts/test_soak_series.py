"""The soak's judgement (pure logic) and its sampling of a real process."""

from __future__ import annotations

import os

from scripts.load.soak_series import SoakSample, growth, process_state, scraped, series_table

METRICS = """\
# TYPE classroom_event_loop_tasks gauge
classroom_event_loop_tasks 42.0
# TYPE classroom_participants gauge
classroom_participants{media="connected"} 14.0
classroom_participants{media="connecting"} 1.0
# TYPE classroom_errors counter
classroom_errors_total{channel="http",type="InternalError"} 1.0
classroom_errors_total{channel="ws",type="InternalError"} 2.0
classroom_errors_total{channel="ws",type="InvalidRequest"} 9.0
"""


def sample(at: float, rss: float, tasks: float = 100.0, fds: int = 70) -> SoakSample:
    return SoakSample(at, rss, fds, 20, 6, tasks, 15.0, 0.0, False)


def test_scraped_reads_tasks_participants_and_internal_errors() -> None:
    assert scraped(METRICS) == {"tasks": 42.0, "participants": 14.0, "internal_errors": 3.0}


def test_a_level_series_passes_and_a_steady_climb_fails() -> None:
    level = [sample(t, 150.0 + (t % 20) / 10) for t in range(0, 1800, 10)]
    judged = growth(level, warmup=300, span=120)
    assert judged["passed"] is True
    assert abs(judged["series"]["rss_mb"]["growth"]) < 0.02
    leaking = [sample(t, 150.0 + t / 60, tasks=100 + t / 100) for t in range(0, 1800, 10)]
    judged = growth(leaking, warmup=300, span=120)
    assert judged["passed"] is False
    assert judged["series"]["rss_mb"]["within"] is False  # +25 MB over 25 minutes
    assert judged["series"]["tasks"]["within"] is False
    assert judged["series"]["fds"]["within"] is True
    # what the warm-up does is not judged
    warming = [sample(t, 100.0 + min(t, 250) / 5) for t in range(0, 1800, 10)]
    assert growth(warming, warmup=300, span=120)["passed"] is True


def test_a_run_too_short_to_judge_fails() -> None:
    short = [sample(t, 150.0) for t in range(0, 400, 10)]
    assert growth(short, warmup=300, span=120)["passed"] is False
    assert growth([], warmup=300, span=120)["passed"] is False


def test_process_state_reads_a_real_process() -> None:
    state = process_state(os.getpid())
    assert state["rss_mb"] > 10 and state["fds"] > 0 and state["threads"] >= 1
    assert state["sockets"] >= 0
    assert "150.0" in series_table([sample(0, 150.0)])

"""The soak's judgement (pure logic) and its sampling of a real process."""

from __future__ import annotations

import os
from pathlib import Path

from scripts.load.soak_series import SoakSample, growth, process_state, scraped, series_table
from scripts.soak import log_errors

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


def test_churn_is_judged_like_for_like_and_a_leak_at_a_full_room_still_fails() -> None:
    def churned(at: int, leak: float = 0.0) -> SoakSample:
        members = 15.0 if at % 30 else 13.0  # a sample every 30 s catches two rejoining
        fds = int(33 * members + leak * at)
        return SoakSample(
            at, 150.0, fds, 48, 5, 68 * members + leak * at, members, 0.0, at % 120 < 20
        )

    # More of the 13-member samples at the end than after warm-up: whole-window medians
    # would call that a change, like for like there is none.
    level = [churned(t) for t in range(0, 1800, 10)]
    judged = growth(level, warmup=300, span=120)
    assert judged["passed"] is True
    assert judged["like_for_like"] == {"participants": 15.0, "recording": False, "window_s": 120}
    leaking = [churned(t, leak=0.05) for t in range(0, 1800, 10)]
    judged = growth(leaking, warmup=300, span=120)
    assert judged["series"]["fds"]["within"] is False
    assert judged["series"]["tasks"]["within"] is False


def test_logged_errors_are_told_with_the_exception_that_ends_their_traceback(
    tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "2026-12-07 10:00:00,000 INFO api: started\n"
        "2026-12-07 10:00:01,000 ERROR sfu.subscription: building a subscribe offer failed\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "    g()\n"
        "aiortc.exceptions.InvalidStateError: RTCPeerConnection is closed\n"
        "2026-12-07 10:00:02,000 ERROR api: plain error\n"
    )
    assert log_errors(log, 0) == [
        "2026-12-07 10:00:01,000 ERROR sfu.subscription: building a subscribe offer failed"
        " | aiortc.exceptions.InvalidStateError: RTCPeerConnection is closed",
        "2026-12-07 10:00:02,000 ERROR api: plain error",
    ]
    assert log_errors(tmp_path / "missing.log", 0) == []

"""The weak-network benchmark's numbers, read from a made-up run: switch times, gaps
between decoded frames, frame rates per second and audio gaps."""

from __future__ import annotations

from typing import Any

from scripts.bench.weak_timeline import fps_windows, max_gap, timeline

TEACHER = "t1"


def _run() -> dict[str, Any]:
    video = [[10 + i / 30, 640, 360] for i in range(150)]  # 10..15 s on high
    video += [[15.5 + i / 30, 320, 180] for i in range(300)]  # 15.5..25.5 s on low
    video += [[26.0 + i / 30, 640, 360] for i in range(150)]
    audio = [10 + i * 0.02 for i in range(850)] + [27.5 + i * 0.02 for i in range(100)]
    return {
        "settings": {"cap_kbit": 600, "low_size": [320, 180], "high_size": [640, 360]},
        "phases": {"ready": 10.0, "capped": 15.0, "lifted": 25.0, "end": 30.0},
        "record": {
            "layers": [
                [9.0, {TEACHER: {"camera": "high", "reason": "requested"}}],
                [15.4, {TEACHER: {"camera": "low", "reason": "bandwidth"}}],
                [25.9, {TEACHER: {"camera": "high", "reason": "requested"}}],
            ],
            "video": video,
            "audio": audio,
            "decodeErrors": 0,
            "videoLosses": 2,
        },
        "server": [],
    }


def test_switch_times_gaps_and_rates_are_read_from_the_frames() -> None:
    numbers = timeline(_run())
    assert numbers["layers_low_s"] == 0.4 and numbers["picture_low_s"] == 0.5
    assert numbers["layers_high_after_lift_s"] == 0.9
    assert numbers["picture_high_after_lift_s"] == 1.0
    assert numbers["camera_changes_while_capped"] == [[0.4, "low", "bandwidth"]]
    assert numbers["camera_changes_after_lift"] == [[0.9, "high", "requested"]]
    assert numbers["max_gap_capped_before_switch_s"] is not None
    assert 0.5 < numbers["max_gap_capped_before_switch_s"] < 0.6  # 14.97 -> 15.5
    assert numbers["fps_after_switch"]["min"] == 30.0
    assert numbers["max_gap_after_lift_s"] is not None and numbers["max_gap_after_lift_s"] > 0.5
    assert numbers["audio_gaps_capped"] == 0 and numbers["audio_frames_capped"] == 500
    assert numbers["audio_max_gap_after_lift_s"] is not None
    assert numbers["audio_max_gap_after_lift_s"] == 0.52  # nothing from 26.98 to 27.5 s
    assert numbers["decode_errors"] == 0 and numbers["video_losses"] == 2


def test_gaps_count_the_window_edges_and_windows_are_whole_seconds() -> None:
    assert max_gap([1.0, 1.5], 0.0, 2.0) == 1.0
    assert max_gap([0.5, 1.5], 1.0, 2.0) == 1.0  # from the last frame before the window
    assert max_gap([], 0.0, 2.0) == 2.0
    assert fps_windows([0.1, 0.2, 1.5], 0.0, 2.5) == [2.0, 1.0]


def test_back_on_high_is_the_last_change_to_high_after_a_retry_that_failed_at_the_lift() -> None:
    run = _run()
    run["record"]["layers"][2:] = [
        [24.5, {TEACHER: {"camera": "high", "reason": "requested"}}],  # a retry, still capped
        [25.2, {TEACHER: {"camera": "low", "reason": "bandwidth"}}],
        [27.0, {TEACHER: {"camera": "high", "reason": "requested"}}],
    ]
    numbers = timeline(run)
    assert numbers["layers_high_after_lift_s"] == 2.0
    assert numbers["layers_first_high_after_lift_s"] == 2.0  # the one at 24.5 came before
    assert numbers["camera_changes_after_lift"] == [
        [0.2, "low", "bandwidth"],
        [2.0, "high", "requested"],
    ]
    run["record"]["layers"].pop()
    assert timeline(run)["layers_high_after_lift_s"] is None  # still low at the end

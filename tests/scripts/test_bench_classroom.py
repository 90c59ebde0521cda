"""``scripts/bench_classroom.py`` on a tiny class for a few seconds: the report's shape,
and that selective forwarding sends each student fewer bytes (a causal, not a timed,
comparison: the same class, subscribing to less)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server_process import REPO

STUDENTS = 4
UNMUTED = 2


def test_a_tiny_class_reports_both_modes_and_selective_sends_students_less(
    tmp_path: Path,
) -> None:
    report = tmp_path / "classroom.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "scripts.bench_classroom", "--students", str(STUDENTS),
            "--tiles", "1", "--unmuted", str(UNMUTED), "--seconds", "3", "--settle-max", "10",
            "--no-pin", "--json", str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "selective / all (median runs)" in done.stdout, done.stdout
    data = json.loads(report.read_text())
    assert data["settings"]["students"] == STUDENTS and data["settings"]["modes"] == [
        "selective",
        "all",
    ]
    runs = {run["mode"]: run for run in data["runs"]}
    assert set(runs) == {"selective", "all"} and set(data["medians"]) == {"selective", "all"}
    for run in runs.values():
        assert run["aborted"] is None and run["failed_connections"] == 0, run["failures"]
        assert run["students_measured"] == STUDENTS
        assert set(run["student_kbps"]) == {"count", "p50", "p95", "max"}
        assert run["server_cores"] > 0 and run["us_per_packet"] > 0
        assert run["load_summary"]["server"]["cpu_source"] == "proc"
        assert run["latency_p95_ms"] is not None and run["first_frame_p95_s"] is not None
        assert 0 < run["loadgen_cores"] < 2
    compared = data["comparison"]
    assert compared["refused"] is None
    assert set(compared) == {
        "refused",
        "server_cores",
        "us_per_packet",
        "student_kbps_p50",
        "bytes_per_student_second",
    }

    selective, everything = runs["selective"], runs["all"]
    assert selective["bytes_per_student_second"] < everything["bytes_per_student_second"]
    assert compared["bytes_per_student_second"] < 1
    summary = selective["load_summary"]
    assert summary["fps"]["screen_streams"] == STUDENTS  # every student sees the screen
    assert summary["fps"]["muted_microphones"] == STUDENTS + 1 - UNMUTED
    assert summary["fps"]["muted_microphone_packets"] == 0
    assert summary["layers"]["events"] >= STUDENTS + 1  # every subscriber was answered
    assert everything["load_summary"]["fps"]["screen_streams"] == 0

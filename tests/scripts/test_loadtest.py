"""Smoke test of ``scripts/loadtest.py``: a short real run against a real server process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server_process import REPO, ServerProcess


def _loadtest(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.loadtest", "--no-progress", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_one_class_of_two_students_for_five_seconds_reports_sane_numbers(
    tmp_path: Path,
) -> None:
    server = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "ICE_ADDRESSES": "127.0.0.1"},
        tmp_path / "server.log",
    )
    await server.start()
    try:
        report = tmp_path / "load.json"
        done = _loadtest(
            "--url", server.base_url, "--classes", "1", "--students", "2", "--duration", "5",
            "--json", str(report), "--plot", str(tmp_path / "load.png"),
            "--chat-rate", "30", "--hand-rate", "12", "--poll-every", "4",
        )  # fmt: skip
        relay = _loadtest(
            "--url", server.base_url, "--classes", "1", "--students", "1", "--duration", "1",
            "--relay-only",
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hop latency" in done.stdout
    summary = json.loads(report.read_text())
    assert summary["aborted"] is None
    assert summary["joins"]["failed"] == 0 and summary["joins"]["ok"] == 3
    assert summary["fps"]["video_streams"] == 6  # everyone receives the two others
    # Functional bounds only (every stream flows, was measured): speed is the benchmarks'.
    assert summary["fps"]["min"] > 5
    assert summary["loss"]["video"]["ratio"] < 0.01
    assert summary["first_frame_s"]["count"] == 6 and 0 < summary["first_frame_s"]["max"] < 20
    assert summary["latency_ms"]["count"] > 100 and 0 < summary["latency_ms"]["p50"] < 1000
    assert summary["decode"]["frames_decoded"] > 0 and summary["decode"]["errors"] == 0
    assert summary["decode"]["sizes"] == ["640x360"]
    assert summary["server"]["cpu_cores_mean"] > 0 and summary["server"]["rss_mb_end"] > 10
    assert summary["server"]["video_streams"] == 6
    # Three participants are far from the generator's limit: the numbers are the server's.
    assert summary["loadgen_cores_mean"] < 0.85 and summary["loadgen_refusal"] is None
    assert "NOT A SERVER MEASUREMENT" not in done.stdout
    assert (tmp_path / "load.png").read_bytes()[:4] == b"\x89PNG"
    # The classroom tools ran next to the media: every message reached all three members,
    # the poll's result holds exactly the votes the students were told were stored.
    activity = summary["activity"]
    chat, hands, polls = activity["chat"], activity["hands"], activity["polls"]
    assert chat["sent"] > 0 and chat["delivered_to_teacher"] == chat["sent"]
    assert chat["deliveries"] == 3 * chat["sent"] and chat["latency_ms"]["p50"] is not None
    assert hands["heard_by_teacher"] == hands["raised"]
    assert polls["run"] == polls["ended"] == 1 and polls["votes_acknowledged"] == 2
    assert polls["results_matching"] == 1 and polls["result_votes"] == 2
    assert summary["peer_errors"] == []
    assert "chat:" in done.stdout and "polls: 1 run" in done.stdout
    # Without TURN servers in ROOM_JOINED, relay-only cannot work: each join fails, saying why.
    assert relay.returncode == 1, relay.stdout + relay.stderr
    assert "server offers no TURN relay" in relay.stdout

"""``scripts/bench_flood.py`` on a tiny class for a few seconds: the report's shape, that
each flood is sent and the server refuses it for the reason it should (a causal, not a
timed, check), and the parsing of the flooder's offer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench.flood import CameraStream, camera_stream, receiver_report
from sfu import native_receive
from tests.native_extensions import require_extension
from tests.server_process import REPO

STUDENTS = 3
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96 0\r\na=mid:0\r\na=ssrc:111 cname:x\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98 99\r\na=mid:1\r\n"
    "a=ssrc-group:FID 2222 3333\r\na=ssrc:2222 cname:x\r\na=ssrc:3333 cname:x\r\n"
)


def test_the_camera_is_the_first_video_sections_media_ssrc() -> None:
    assert camera_stream(OFFER) == CameraStream(ssrc=2222, payload_type=97, mid="1")
    without_rtx = OFFER.replace("a=ssrc-group:FID 2222 3333\r\n", "").replace("2222", "4444")
    assert camera_stream(without_rtx).ssrc == 4444
    with pytest.raises(ValueError, match="no video section"):
        camera_stream(OFFER.split("m=video")[0])


def test_a_receiver_report_is_eight_bytes_of_rtcp() -> None:
    report = receiver_report(0x01020304)
    assert report == bytes([0x80, 201, 0, 1, 1, 2, 3, 4])


def test_each_flood_is_sent_and_refused_for_its_reason(tmp_path: Path) -> None:
    require_extension(native_receive.AVAILABLE, "sfu._receive")
    report = tmp_path / "flood.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "scripts.bench_flood", "--students", str(STUDENTS),
            "--seconds", "2", "--no-pin", "--json", str(report),
        ],
        cwd=REPO,
        env={**os.environ, "MEDIA_VIDEO_MAX_KBPS": "1000"},  # twice the camera's rate
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["settings"]["server_env"] == {"MEDIA_VIDEO_MAX_KBPS": "1000"}
    runs = {run["flood"]: run for run in data["runs"]}
    assert set(runs) == {"none", "rtp", "unknown_ssrc", "rtcp"}
    for run in runs.values():
        assert run["aborted"] is None and run["failed_connections"] == 0, run
        assert run["flood_error"] is None, run["flood_error"]
        # teacher + the other students publish, everyone but the flooder subscribes
        assert run["streams"] == STUDENTS * (STUDENTS - 1)
        assert run["fps_mean"] > 0 and run["latency_samples"] > 0
        assert run["flooder_camera"]["packets_per_s"] > 0
    assert runs["none"]["flood_sent"] == 0 and runs["none"]["refused"] == {}
    rtp = runs["rtp"]
    camera = rtp["flooder_camera"]["packets_per_s"]
    assert rtp["flood_per_s"] > 5 * camera  # nine times the camera's rate, give or take
    assert rtp["refused"]["track_cap"] > 0
    assert runs["unknown_ssrc"]["refused"]["unknown_ssrc"] > 0
    assert runs["rtcp"]["flood_per_s"] > 1000
    assert runs["rtcp"]["refused"]["rtcp_flood"] > 0
    assert set(data["comparison"]) == {"rtp", "unknown_ssrc", "rtcp"}
    assert "rtp / none: fps mean" in done.stdout

"""``scripts/bench_cluster.py`` on the smallest cluster for a few seconds: two nodes, one
class of one student through the balancer. The report's shape and its facts: everyone
joined, both nodes measured, the probe joined on the room's node and relayed, and the
probe class was back in media on the other node after its room's node was killed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.support.redis_server import REDIS_SERVER
from tests.server_process import REPO


def test_the_smallest_cluster_reports_spread_joins_and_failover(tmp_path: Path) -> None:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (scripts/setup.sh --test installs it)")
    report = tmp_path / "cluster.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "scripts.bench_cluster", "--nodes", "2", "--classes", "1",
            "--students", "1", "--publishers", "2", "--duration", "2", "--probe-joins", "1",
            "--failover-students", "1", "--json", str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    joins = data["load"]["joins"]
    assert joins["ok"] == joins["attempted"] == 2 and joins["failed"] == 0
    assert set(data["steady"]["nodes"]) == {"node-a", "node-b"}
    assert sum(n["participants"] for n in data["steady"]["nodes"].values()) >= 2
    assert {k: v["joins"] for k, v in data["join_room"].items()} == {
        "same_node": 1,
        "relayed": 1,
    }
    failover = data["failover"]
    assert failover["participants"] == 2
    assert failover["placed_again_on"] != failover["killed"]
    assert failover["all_back_in_media_s"] > 0
    assert "back in media after" in done.stdout

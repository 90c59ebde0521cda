"""The muting benchmark on one student and one cycle: its JSON, and that nothing of a
muted microphone reached anyone while its client kept sending."""

from __future__ import annotations

import json
from pathlib import Path

from scripts import bench_muting


async def test_a_muted_microphone_reaches_nobody_and_unmuted_is_heard(tmp_path: Path) -> None:
    out = tmp_path / "muting.json"
    args = bench_muting.parse_args(
        ["--cycles", "1", "--listeners", "1", "--muted-seconds", "1", "--json", str(out)]
    )
    result = await bench_muting.run(args)
    out.write_text(json.dumps(result))
    saved = json.loads(out.read_text())
    assert saved["client_kept_sending"] is True
    assert saved["forwarded_while_muted"] == 0 and saved["received_while_muted"] == 0
    assert len(saved["cycles"]) == 1 and len(saved["cycles"][0]["unmute_ms"]) == 1
    assert saved["unmute_ms_p50"] is not None and saved["unmute_ms_p50"] > 0

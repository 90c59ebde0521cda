"""A student whose downlink ``tc`` caps to 600 kbit/s gets the teacher's camera on the
low layer for bandwidth, keeps hearing the teacher and decoding every frame, and gets
the high layer back once the cap is lifted (`scripts.bench.weak_network`: real server,
real aiortc peers, the student in a namespace of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scripts.bench import shaped_link
from scripts.bench.weak_network import WeakSettings, run

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(not shaped_link.available(), reason="needs root, ip and tc"),
]


def _camera_entries(events: list[Any], start: float, end: float) -> list[dict[str, str]]:
    return [
        entry
        for at, data in events
        if start <= at <= end
        for entry in data.values()
        if isinstance(entry, dict) and "camera" in entry
    ]


async def test_a_capped_downlink_gets_the_low_layer_and_the_high_one_back_when_freed(
    tmp_path: Path,
) -> None:
    settings = WeakSettings(
        warmup=1.0,
        capped=3.0,  # the cap is lifted once the low layer is decoded, 3 s after it at most
        after=2.0,
        ready_timeout=60.0,
        low_timeout=60.0,
        high_timeout=90.0,
    )
    result = await run(settings, tmp_path)
    assert result.failure is None, result.failure
    phases, record = result.phases, result.record
    capped, low_seen, lifted, end = (
        phases["capped"], phases["low_seen"], phases["lifted"], phases["end"],
    )  # fmt: skip
    events = record["layers"]
    # (On a busy machine a stall may have put it on low before the cap: what counts is
    # what it was told last.)
    told = _camera_entries(events, 0.0, low_seen)
    assert (told[-1]["camera"], told[-1]["reason"]) == ("low", "bandwidth"), events
    assert _camera_entries(events, 0.0, end)[-1]["camera"] == "high", events
    video = record["video"]
    assert (320, 180) in {(w, h) for at, w, h in video if capped <= at <= lifted}
    back = {(w, h) for at, w, h in video if at >= phases["high_seen"]}
    assert back == {(640, 360)}
    assert record["decodeErrors"] == 0
    audio = record["audio"]
    # While capped and after: the test lifts the cap as soon as low is decoded, so the
    # span between those two may hold no packet at all.
    for start, stop in ((capped, lifted), (lifted, end)):
        assert any(start <= at <= stop for at in audio), (start, stop)  # it kept coming

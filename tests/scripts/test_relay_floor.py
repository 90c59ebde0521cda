"""Smoke test of ``scripts/bench/relay_floor.py``: each relay variant really forwards.

One short run per variant (N=2, a 1 s window): both sinks receive the paced stream and
the relay's CPU per forwarded packet is a positive, finite number.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from scripts.bench.relay_floor import (
    C_VARIANTS,
    FPS,
    FRAME_DATAGRAMS,
    PY_VARIANTS,
    compile_relay,
    find_compiler,
    run_case,
)

SINKS = 2
WINDOW_S = 1.0
WARMUP_S = 0.3
MAX_LOSS = 0.02


def _relay_cpu() -> int | None:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return cpus[0] if len(cpus) >= 2 else None


@pytest.mark.parametrize("variant", [*PY_VARIANTS, *C_VARIANTS])
def test_relay_forwards_to_every_sink_and_reports_cpu(variant: str, tmp_path: Path) -> None:
    c_binary = None
    if variant in C_VARIANTS:
        if find_compiler() is None:
            pytest.skip("no C compiler (cc, gcc, clang or $CC) to build relay_floor.c")
        c_binary = compile_relay(tmp_path)
    result = run_case(variant, SINKS, WINDOW_S, WARMUP_S, _relay_cpu(), c_binary)
    assert result.skipped is None
    expected = round(WINDOW_S * FPS) * len(FRAME_DATAGRAMS) * SINKS
    assert result.expected_packets == expected
    assert result.forwarded_packets >= expected * (1 - MAX_LOSS), result
    assert result.worst_sink_loss <= MAX_LOSS, result  # both sinks, not one twice
    assert result.relay_errors == 0, result
    assert result.relay_received is not None and result.relay_received > 0
    assert result.relay_sent == result.relay_received * SINKS
    assert math.isfinite(result.cpu_us_per_packet) and result.cpu_us_per_packet > 0, result
    assert 0 < result.cores < 1, result

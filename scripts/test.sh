#!/usr/bin/env bash
# Set up everything the tests need, then lint, type-check and run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/api -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest --durations=15 "$@"
if (( $# == 0 )); then
  # The media plane's end-to-end tests once more on its Python fallback, as if the C
  # extensions were not built (what an install without a compiler runs).
  fallback=(forwarding layers temporal_layers packet_loss keyframe_policy
            keyframes_late_joiner recorder renegotiation_and_codecs counter_totals
            fanout_path sync_receive media_events control_reads bandwidth
            forwarding_counters)
  echo "the media tests again with SFU_NATIVE=0 (the Python receive and send paths)"
  files=("${fallback[@]/#/tests/sfu/test_}")
  SFU_NATIVE=0 .venv/bin/python -m pytest -q "${files[@]/%/.py}"
fi

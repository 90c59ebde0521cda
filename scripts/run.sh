#!/usr/bin/env bash
# Set up (first time only) and run the server on the embedded SQLite store.
# Settings come from the environment (docs/configuration.md) or flags, which override it
# (scripts/run.sh --help); data goes to ./data by default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m api "$@"

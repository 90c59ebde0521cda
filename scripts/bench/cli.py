"""What the benchmark scripts' ``main`` share: quiet media logs, run, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

NOISY_LOGGERS = ("aioice", "aiortc", "scripts.synthpeer")


def run_report(
    main_async: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run `main_async(args)` with warnings only (media libraries: errors only) and write
    its report to ``args.json`` when given; return the report."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    report = asyncio.run(main_async(args))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report

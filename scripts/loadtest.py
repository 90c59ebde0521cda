"""``classroom-loadtest``: synthetic classrooms against a running server, then a report.

    .venv/bin/python -m scripts.loadtest --url http://127.0.0.1:3000 \\
        --classes 2 --students 5 --duration 30 --json load.json --plot load.png

Drives N classes x M students (+ a teacher each) through the public API only: accounts,
class, enrolment, session start, class WebSocket, WebRTC publish/subscribe. Prints a live
progress line on stderr, then a summary table on stdout; ``--json`` writes every number,
``--plot`` a PNG of server CPU and hop latency against the number of streams (it needs
matplotlib, the ``plot`` extra: checked before the run starts). The server's
CPU and memory come from its ``/metrics`` (loopback, or ``--metrics-token``). Exit code: 0,
1 if joins failed, a peer reported an error or the run hit its time limit, 2 for bad
options.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from scripts.load.monitor import TimelinePoint
from scripts.load.options import OptionError, parse_options
from scripts.load.plot import PlotUnavailable, plot_timeline, pyplot
from scripts.load.progress import Progress
from scripts.load.runner import LoadRun
from scripts.load.summary import format_table


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # aiortc/aioice log every closed transport at INFO/WARNING under load: keep the bar readable.
    for noisy in ("aioice", "aiortc", "scripts.synthpeer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        options = parse_options(argv)
        if options.plot_path is not None:
            pyplot()  # a missing extra fails now, not after the whole run
        summary = asyncio.run(LoadRun(options, Progress(options.progress)).run())
    except (OptionError, PlotUnavailable) as error:
        print(f"classroom-loadtest: {error}", file=sys.stderr)
        return 2
    print(format_table(summary))
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(summary, indent=2) + "\n")
    if options.plot_path is not None:
        config = summary["config"]
        plot_timeline(
            [TimelinePoint(**point) for point in summary["timeline"]],
            options.plot_path,
            f"{config['classes']} classes x {config['students']} students, "
            f"{config['width']}x{config['height']} {config['bitrate'] // 1000} kbps",
        )
    failed = summary["joins"]["failed"] or summary["peer_errors"] or summary["aborted"]
    return 1 if failed else 0


def entry_point() -> None:
    """The ``classroom-loadtest`` console command."""
    raise SystemExit(main())


if __name__ == "__main__":
    entry_point()

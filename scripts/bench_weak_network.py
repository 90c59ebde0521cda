"""A student's downlink capped to 600 kbit/s, then freed: how the server's layer choice
follows (`scripts.bench.weak_network`).

A teacher publishes a camera in two layers (640x360 ``--high-bitrate``, 320x180
``--low-bitrate``) and a microphone; one student in its own network namespace decodes
every frame. ``tc`` caps the student's downlink for ``--capped`` s, then lifts the cap.
Printed per run: time to ``LAYERS`` camera low with reason bandwidth and to a decoded
320x180 picture, decoded frame rate per second before and after the switch, the longest
gap between decoded frames (before and after the switch), audio gaps, time back on high
after the lift, decode errors; then the server's estimate for the student once a
second. Needs root (namespaces, ``tc``).

    .venv/bin/python -m scripts.bench_weak_network --repeat 3 --json artifacts/weak_network.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from scripts.bench.shaped_link import available
from scripts.bench.weak_network import WeakSettings, run
from scripts.bench.weak_timeline import server_lines, timeline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = WeakSettings()
    p.add_argument("--cap-kbit", type=int, default=d.cap_kbit)
    p.add_argument("--warmup", type=float, default=d.warmup, help="s on high before the cap")
    p.add_argument("--capped", type=float, default=d.capped, help="s from the cap to the lift")
    p.add_argument("--after", type=float, default=d.after, help="s held back on high")
    p.add_argument("--high-bitrate", type=int, default=d.high_bitrate)
    p.add_argument("--low-bitrate", type=int, default=d.low_bitrate)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the runs here")
    return p.parse_args(argv)


def settings_of(args: argparse.Namespace) -> WeakSettings:
    return WeakSettings(
        cap_kbit=args.cap_kbit,
        warmup=args.warmup,
        capped=args.capped,
        after=args.after,
        high_bitrate=args.high_bitrate,
        low_bitrate=args.low_bitrate,
    )


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def report(number: int, numbers: dict[str, Any]) -> list[str]:
    fps_after = numbers.get("fps_after_switch") or {}
    fps_before = numbers.get("fps_before_cap") or {}
    fps_high = numbers.get("fps_back_on_high") or {}
    lines = [
        f"run {number}: cap {numbers['cap_kbit']} kbit/s"
        + (f"  FAILED: {numbers['failure']}" if numbers.get("failure") else ""),
        f"  before the cap: fps min {fps_before.get('min')} median {fps_before.get('median')}",
        f"  LAYERS camera low (bandwidth) {_s(numbers['layers_low_s'])} after the cap; "
        f"320x180 decoded {_s(numbers['picture_low_s'])}",
        f"  longest gap between decoded frames before the switch "
        f"{_s(numbers.get('max_gap_capped_before_switch_s'))}, after it "
        f"{_s(numbers.get('max_gap_after_switch_s'))}",
        f"  after the switch: fps per second min {fps_after.get('min')} median "
        f"{fps_after.get('median')} ({fps_after.get('windows')} windows)",
        f"  camera changes while capped (s, camera, reason): "
        f"{numbers['camera_changes_while_capped']}",
        f"  audio while capped: {numbers.get('audio_frames_capped')} frames, longest gap "
        f"{_s(numbers.get('audio_max_gap_capped_s'))}, gaps over 0.1 s: "
        f"{numbers.get('audio_gaps_capped')}",
        f"  lifted: LAYERS camera high first {_s(numbers['layers_first_high_after_lift_s'])}, "
        f"for good {_s(numbers['layers_high_after_lift_s'])}, 640x360 decoded for good "
        f"{_s(numbers['picture_high_after_lift_s'])}; longest video gap after the "
        f"lift {_s(numbers.get('max_gap_after_lift_s'))}; fps on high min "
        f"{fps_high.get('min')} median {fps_high.get('median')}",
        f"  camera changes after the lift: {numbers['camera_changes_after_lift']}",
        f"  decode errors {numbers['decode_errors']}, incomplete frames {numbers['video_losses']}",
    ]
    return lines


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = []
    for number in range(1, args.repeat + 1):
        result = (await run(settings_of(args))).to_json()
        numbers = timeline(result)
        runs.append({"numbers": numbers, "run": result})
        print("\n".join(report(number, numbers)))
        print("  server's view of the student's downlink (s after the cap):")
        print("\n".join(server_lines(result)), flush=True)
    return runs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not available():
        raise SystemExit("needs root, ip and tc (it makes network namespaces)")
    logging.basicConfig(level=logging.WARNING)
    runs = asyncio.run(main_async(args))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()

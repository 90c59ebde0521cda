"""The numbers of a weak-network run (`scripts.bench.weak_network.WeakRun.to_json()`),
read out of what the student decoded and was told: pure functions, no clock.

Times in the result are seconds after the cap (``capped``) or after it was lifted
(``lifted``); gaps are between consecutive decoded frames.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from typing import Any

AUDIO_GAP = 0.1
"""A gap between decoded audio frames (20 ms each) longer than this is heard."""


def _first_layers(
    events: Sequence[Sequence[Any]], after: float, camera: str, reason: str | None = None
) -> float | None:
    for at, data in events:
        if at < after:
            continue
        for entry in data.values():
            if (
                isinstance(entry, dict)
                and entry.get("camera") == camera
                and (reason is None or entry.get("reason") == reason)
            ):
                return float(at)
    return None


def _first_picture(
    video: Sequence[Sequence[float]], after: float, size: Sequence[int]
) -> float | None:
    for at, width, height in video:
        if at >= after and [width, height] == list(size):
            return float(at)
    return None


def _settled_layers(
    events: Sequence[Sequence[Any]], after: float, end: float, camera: str
) -> float | None:
    """When the camera last changed to `camera` by `end` (`after` if it already was at
    `after`); None if it is not `camera` at `end`."""
    last: tuple[float, str] | None = None
    for at, data in events:
        if at > end:
            break
        for entry in data.values():
            if isinstance(entry, dict) and "camera" in entry:
                last = (float(at), str(entry["camera"]))
    if last is None or last[1] != camera:
        return None
    return max(last[0], after)


def _settled_picture(
    video: Sequence[Sequence[float]], after: float, end: float, size: Sequence[int]
) -> float | None:
    """The first frame of the last stretch of `size` pictures by `end` (`after` if the
    stretch began before it); None if the last picture is another size."""
    start: float | None = None
    for at, width, height in video:
        if at > end:
            break
        if [width, height] != list(size):
            start = None
        elif start is None:
            start = float(at)
    return None if start is None else max(start, after)


def max_gap(times: Sequence[float], start: float, end: float) -> float | None:
    """The longest time without a frame over [start, end], from the last frame before
    `start` (or `start`) to `end`; `times` sorted."""
    before = [t for t in times if t < start]
    inside = [t for t in times if start <= t <= end]
    points = [before[-1] if before else start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(points)) if end > points[0] else None


def gaps_over(times: Sequence[float], start: float, end: float, limit: float) -> int:
    inside = [t for t in times if start <= t <= end]
    return sum(1 for a, b in itertools.pairwise(inside) if b - a > limit)


def fps_windows(
    times: Sequence[float], start: float, end: float, width: float = 1.0
) -> list[float]:
    """Frames per second in consecutive whole windows of `width` s from `start`."""
    windows: list[float] = []
    at = start
    while at + width <= end + 1e-9:
        windows.append(sum(1 for t in times if at <= t < at + width) / width)
        at += width
    return windows


def _camera_changes(
    events: Sequence[Sequence[Any]], start: float | None, end: float | None
) -> list[list[Any]]:
    """``[seconds after start, camera, reason]`` of each ``LAYERS`` camera entry in
    [start, end)."""
    if start is None:
        return []
    return [
        [round(at - start, 3), entry.get("camera"), entry.get("reason")]
        for at, data in events
        if start <= at and (end is None or at < end)
        for entry in data.values()
        if isinstance(entry, dict) and "camera" in entry
    ]


def _since(moment: float | None, origin: float | None) -> float | None:
    if moment is None or origin is None:
        return None
    return round(moment - origin, 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _fps_summary(windows: list[float]) -> dict[str, float | None]:
    return {
        "min": min(windows) if windows else None,
        "median": statistics.median(windows) if windows else None,
        "windows": len(windows),
    }


def timeline(run: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one run."""
    settings, phases, record = run["settings"], run["phases"], run["record"]
    events = record.get("layers", [])
    video = record.get("video", [])
    frames = [float(v[0]) for v in video]
    audio = [float(a) for a in record.get("audio", [])]
    ready, capped = phases.get("ready"), phases.get("capped")
    lifted, end = phases.get("lifted"), phases.get("end")
    low_layers = low_picture = high_layers = high_picture = None
    if capped is not None:
        low_layers = _first_layers(events, capped, "low", "bandwidth")
        low_picture = _first_picture(video, capped, settings["low_size"])
    if lifted is not None and end is not None:
        high_layers = _settled_layers(events, lifted, end, "high")
        high_picture = _settled_picture(video, lifted, end, settings["high_size"])
    capped_end = lifted if lifted is not None else end
    changes = _camera_changes(events, capped, capped_end)
    result: dict[str, Any] = {
        "cap_kbit": settings["cap_kbit"],
        "failure": run.get("failure"),
        "layers_low_s": _since(low_layers, capped),
        "picture_low_s": _since(low_picture, capped),
        "layers_first_high_after_lift_s": _since(
            _first_layers(events, lifted, "high") if lifted is not None else None, lifted
        ),
        "layers_high_after_lift_s": _since(high_layers, lifted),
        "picture_high_after_lift_s": _since(high_picture, lifted),
        "high_stayed_after_lift_s": _since(end, high_picture),
        "camera_changes_while_capped": changes,
        "camera_changes_after_lift": _camera_changes(events, lifted, end),
        "decode_errors": record.get("decodeErrors"),
        "video_losses": record.get("videoLosses"),
    }
    if ready is not None and capped is not None:
        result["fps_before_cap"] = _fps_summary(fps_windows(frames, ready, capped))
        result["audio_max_gap_before_cap_s"] = _round(max_gap(audio, ready, capped))
    if capped is not None and capped_end is not None:
        result["max_gap_capped_before_switch_s"] = _round(
            max_gap(frames, capped, low_picture or capped_end)
        )
        result["audio_max_gap_capped_s"] = _round(max_gap(audio, capped, capped_end))
        result["audio_gaps_capped"] = gaps_over(audio, capped, capped_end, AUDIO_GAP)
        result["audio_frames_capped"] = sum(1 for t in audio if capped <= t < capped_end)
    if low_picture is not None and capped_end is not None:
        result["fps_after_switch"] = _fps_summary(fps_windows(frames, low_picture, capped_end))
        result["max_gap_after_switch_s"] = _round(max_gap(frames, low_picture, capped_end))
    if lifted is not None and end is not None:
        result["max_gap_after_lift_s"] = _round(max_gap(frames, lifted, end))
        result["audio_max_gap_after_lift_s"] = _round(max_gap(audio, lifted, end))
        if high_picture is not None:
            result["fps_back_on_high"] = _fps_summary(fps_windows(frames, high_picture, end))
    return result


def server_lines(run: dict[str, Any], every: float = 1.0) -> list[str]:
    """The server's view of the student's downlink, about once per `every` s after the
    cap: estimate (limit), last REMB, loss, what it sent (first transmissions), the
    packets it re-sent answering NACKs since the line before, and the camera layer."""
    capped = run["phases"].get("capped")
    if capped is None:
        return []
    lines, next_at, resent = [], capped - every, 0
    for sample in run["server"]:
        if sample["t"] < next_at:
            continue
        next_at = sample["t"] + every
        lines.append(
            f"  {sample['t'] - capped:+7.1f} s  limit {_kbit(sample['limit'])}  "
            f"remb {_kbit(sample['remb'])}  loss {_pct(sample['loss'])}  "
            f"sent {_kbit(sample['sent'])}  resent {sample['retransmissions'] - resent:4d}  "
            f"layer {sample['layer']}"
        )
        resent = sample["retransmissions"]
    return lines


def _kbit(value: float | None) -> str:
    return "   -    " if value is None else f"{value / 1000:5.0f} kb"


def _pct(value: float | None) -> str:
    return "  - " if value is None else f"{100 * value:3.0f}%"

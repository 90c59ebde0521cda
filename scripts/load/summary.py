"""The end of a run: numbers (the JSON) and the table printed from them."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from scripts.load.activity import ActivityRecord, activity_summary
from scripts.load.counting import StreamCounter
from scripts.load.loadgen_guard import refusal
from scripts.load.monitor import Monitor, ServerSample, percentile
from scripts.load.options import LoadOptions
from scripts.load.participant import JoinRecord, LoadRegistry
from scripts.load.population import SetupFailure

LOW_FPS = 25.0


@dataclass
class Window:
    """The measurement window: everyone joined (or given up on), for `duration` seconds."""

    start: float = 0.0
    end: float = 0.0
    server_start: ServerSample | None = None
    server_end: ServerSample | None = None
    loadgen_cpu: float = 0.0
    probe_marks: dict[int, int] = field(default_factory=dict)
    server_proc_start: tuple[float, float] | None = None
    """(CPU seconds, monotonic time) of the server's process, with ``--server-pid``."""
    server_proc_end: tuple[float, float] | None = None


def _stats(values: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, Any]:
    def fmt(value: float | None) -> float | None:
        return None if value is None else round(value * scale, digits)

    return {
        "count": len(values),
        "p50": fmt(percentile(values, 0.5)),
        "p95": fmt(percentile(values, 0.95)),
        "max": fmt(max(values) if values else None),
    }


def _join_of(joins: list[JoinRecord], user: str, at: float) -> JoinRecord | None:
    """The user's latest successful join that started before ``at``."""
    found = None
    for record in joins:
        if record.user == user and record.error is None and record.started_at <= at:
            found = record
    return found


def _first_frame(counter: StreamCounter, joins: list[JoinRecord]) -> float | None:
    """From the later of (subscriber sent JOIN_ROOM, publisher got ROOM_JOINED) to the
    stream's first complete frame."""
    if counter.first_frame_at is None:
        return None
    subscriber = _join_of(joins, counter.subscriber, counter.opened_at)
    publisher = _join_of(joins, counter.publisher, counter.opened_at)
    if subscriber is None or publisher is None or publisher.room_joined_at is None:
        return None
    return counter.first_frame_at - max(subscriber.started_at, publisher.room_joined_at)


def _window_rates(
    counters: list[StreamCounter],
    window: Window,
    requested: dict[str, dict[str, dict[str, str]]],
) -> list[dict[str, Any]]:
    """Per stream open through the whole window: frame rate, bytes and loss inside it, and
    what the subscriber asked for it (`None`: nothing, the server's default)."""
    span = window.end - window.start
    rows = []
    for counter in counters:
        start, end = counter.marks.get("start"), counter.marks.get("end")
        if start is None or end is None or span <= 0:
            continue
        expected = end["expected"] - start["expected"]
        received = end["packets"] - start["packets"]
        rows.append(
            {
                "subscriber": counter.subscriber,
                "publisher": counter.publisher,
                "kind": counter.kind,
                "source": counter.source,
                "requested": requested.get(counter.subscriber, {})
                .get(counter.publisher, {})
                .get(counter.source),
                "full": counter.full,
                "fps": round((end["frames"] - start["frames"]) / span, 2),
                "packets": received,
                "bytes": end["bytes"] - start["bytes"],
                "lost": max(0, expected - received),
                "expected": max(expected, 0),
            }
        )
    return rows


def _loss(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    expected = sum(r["expected"] for r in rows if r["kind"] == kind)
    lost = sum(r["lost"] for r in rows if r["kind"] == kind)
    return {
        "expected_packets": expected,
        "lost_packets": lost,
        "ratio": round(lost / expected, 5) if expected else None,
    }


def summarize(
    options: LoadOptions,
    planned_participants: int,
    setup_failures: list[SetupFailure],
    registry: LoadRegistry,
    monitor: Monitor,
    window: Window,
    aborted: str | None,
    settle_s: float = 0.0,
    activity: ActivityRecord | None = None,
) -> dict[str, Any]:
    """Everything the run measured, as JSON-ready data."""
    joins = registry.joins
    first = [j for j in joins if j.kind == "join"]
    failed = [j for j in joins if j.error is not None]
    rows = _window_rates(registry.counters, window, registry.requested)
    # Cameras the subscriber turned off are meant to be silent: not a frame rate to rate.
    video_rows = [
        r
        for r in rows
        if r["source"] == "camera" and r["kind"] == "video" and r["requested"] != "off"
    ]
    fps = [r["fps"] for r in video_rows]
    screen_fps = [r["fps"] for r in rows if r["source"] == "screen"]
    audio_rates = [
        r["fps"] for r in rows if r["kind"] == "audio" and r["publisher"] not in registry.muted
    ]
    muted_packets = sum(
        r["packets"] for r in rows if r["kind"] == "audio" and r["publisher"] in registry.muted
    )
    first_source = "camera" if options.video else "microphone"
    first_frames = [
        t
        for c in registry.counters
        if c.source == first_source and (t := _first_frame(c, joins)) is not None
    ]
    latencies = [
        sample
        for probe in registry.probes
        for sample in probe.samples[window.probe_marks.get(id(probe), 0) :]
    ]
    sinks = registry.video_sinks()
    span = window.end - window.start
    loadgen_cores = round(window.loadgen_cpu / span, 3) if span > 0 else None
    server: dict[str, Any] = {"metrics_error": monitor.scraper.error, "cpu_source": "metrics"}
    if window.server_start is not None and window.server_end is not None and span > 0:
        start, end = window.server_start, window.server_end
        cpu, cpu_span = end.cpu_seconds - start.cpu_seconds, end.at - start.at
        if window.server_proc_start is not None and window.server_proc_end is not None:
            cpu = window.server_proc_end[0] - window.server_proc_start[0]
            cpu_span = window.server_proc_end[1] - window.server_proc_start[1]
            server["cpu_source"] = "proc"
        forwarded = sum(r["packets"] for r in rows)
        server.update(
            {
                "cpu_seconds": round(cpu, 3),
                "forwarded_packets": forwarded,
                "cpu_cores_mean": round(cpu / cpu_span, 3),
                "cpu_us_per_received_packet": round(cpu / forwarded * 1e6, 2)
                if forwarded
                else None,
                "rss_mb_end": round(end.rss_bytes / 1e6, 1),
                "video_streams": end.video_streams,
                "audio_streams": end.audio_streams,
                "participants": end.participants,
            }
        )
    cores = [p.server_cores for p in monitor.timeline if p.server_cores is not None]
    rss = [p.server_rss_mb for p in monitor.timeline if p.server_rss_mb is not None]
    server["cpu_cores_max"] = max(cores) if cores else None
    server["rss_mb_max"] = max(rss) if rss else None
    if server.get("participants") and server.get("rss_mb_end") and monitor.samples:
        baseline = monitor.samples[0].rss_bytes / 1e6
        server["rss_mb_per_participant"] = round(
            (server["rss_mb_end"] - baseline) / server["participants"], 2
        )
    config = {
        k: (str(v) if v is not None and k.endswith("_path") else v)
        for k, v in asdict(options).items()
    }
    config.pop("metrics_token", None)
    return {
        "config": config,
        "aborted": aborted,
        "window_s": round(span, 2),
        "settle_s": settle_s,
        "participants": {
            "planned": planned_participants,
            "joined_at_end": sum(1 for _ in joins if _.error is None and _.kind == "join"),
            "setup_failures": [asdict(f) for f in setup_failures],
        },
        "joins": {
            "attempted": len(first),
            "ok": sum(1 for j in first if j.error is None),
            "failed": len(failed),
            "rejoins": sum(1 for j in joins if j.kind == "rejoin"),
            "shed_and_retried": sum(j.shed for j in joins),
            "failures": [
                {
                    "user": j.user,
                    "role": j.role,
                    "class": j.class_index,
                    "kind": j.kind,
                    "reason": j.error,
                }
                for j in failed
            ],
            "join_s": _stats(
                [j.room_joined_at - j.started_at for j in joins if j.room_joined_at is not None]
            ),
            "ready_s": _stats([j.ready_at - j.started_at for j in joins if j.ready_at is not None]),
        },
        "first_frame_s": _stats(first_frames),
        "downstream": _downstream(rows, joins, span),
        "layers": {
            "events": sum(entry["events"] for entry in registry.layers.values()),
            "bandwidth_reduced": sum(entry["bandwidth"] for entry in registry.layers.values()),
        },
        "fps": {
            "video_streams": len(fps),
            "screen_streams": len(screen_fps),
            "screen_mean": round(statistics.fmean(screen_fps), 2) if screen_fps else None,
            "mean": round(statistics.fmean(fps), 2) if fps else None,
            "p5": percentile(fps, 0.05),
            "min": min(fps) if fps else None,
            "below_25": sum(1 for f in fps if f < LOW_FPS),
            "audio_packets_per_s_mean": round(statistics.fmean(audio_rates), 2)
            if audio_rates
            else None,
            "muted_microphones": len(registry.muted),
            "muted_microphone_packets": muted_packets,
        },
        "loss": {"video": _loss(rows, "video"), "audio": _loss(rows, "audio")},
        "latency_ms": {
            **_stats(latencies, 1000.0, 2),
            "streams_probed": len(registry.probes),
            "worst_second_p95_before_window": max(
                (
                    p.latency_p95_ms
                    for p in monitor.timeline
                    if p.phase in ("ramp", "settle") and p.latency_p95_ms is not None
                ),
                default=None,
            ),
        },
        "decode": {
            "streams_sampled": sum(1 for s in sinks if s.decoded),
            "frames_decoded": sum(s.decoded for s in sinks),
            "errors": sum(s.decode_errors for s in sinks),
            "sizes": sorted({f"{w}x{h}" for s in sinks for (w, h) in s.sizes}),
        },
        "activity": activity_summary(activity, percentile) if activity is not None else None,
        "server": server,
        "loadgen_cores_mean": loadgen_cores,
        "loadgen_refusal": refusal([("the window", loadgen_cores)]),
        "peer_errors": registry.peer_errors,
        "per_stream": rows,
        "timeline": [asdict(p) for p in monitor.timeline],
    }


def _downstream(rows: list[dict[str, Any]], joins: list[JoinRecord], span: float) -> dict[str, Any]:
    """Each student's downstream bitrate inside the window (all streams they received,
    RTP datagram bytes), in kbit/s."""
    students = {j.user for j in joins if j.role == "student" and j.error is None}
    per_subscriber: dict[str, float] = dict.fromkeys(sorted(students), 0.0)
    by_source: dict[str, float] = {}
    for row in rows:
        if row["subscriber"] in per_subscriber and span > 0:
            kbps = row["bytes"] * 8 / span / 1000
            per_subscriber[row["subscriber"]] += kbps
            by_source[row["source"]] = by_source.get(row["source"], 0.0) + kbps
    students_count = len(per_subscriber)
    return {
        "student_kbps": _stats(list(per_subscriber.values()), digits=1),
        "student_bytes": sum(r["bytes"] for r in rows if r["subscriber"] in per_subscriber),
        "student_kbps_by_source_mean": {
            source: round(total / students_count, 1) for source, total in sorted(by_source.items())
        }
        if students_count
        else {},
        "per_student_kbps": {user: round(kbps, 1) for user, kbps in per_subscriber.items()},
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}{unit}" if abs(value) < 1000 else f"{value:.0f}{unit}"
    return f"{value}{unit}"


def format_table(summary: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    joins, server, fps = summary["joins"], summary["server"], summary["fps"]
    loss = summary["loss"]
    config = summary["config"]
    lines = [
        f"load test: {config['classes']} classes x {config['students']} students (+ teacher), "
        f"publishers {config['publishers'] if config['publishers'] is not None else 'all'}, "
        f"{config['width']}x{config['height']} {config['fps']} fps "
        f"{config['bitrate'] // 1000} kbps, "
        f"window {summary['window_s']} s after {summary['settle_s']} s settling"
        + (f"  ABORTED: {summary['aborted']}" if summary["aborted"] else ""),
        "",
        f"{'metric':<34} {'p50':>9} {'p95':>9} {'max':>9}",
    ]

    def row(name: str, stats: dict[str, Any], unit: str) -> None:
        lines.append(
            f"{name:<34} {_fmt(stats['p50'], unit):>9} {_fmt(stats['p95'], unit):>9} "
            f"{_fmt(stats['max'], unit):>9}"
        )

    row(f"join (JOIN_ROOM->ROOM_JOINED) n={joins['join_s']['count']}", joins["join_s"], " s")
    row("ready (incl. publish answer)", joins["ready_s"], " s")
    row(f"first frame n={summary['first_frame_s']['count']}", summary["first_frame_s"], " s")
    latency = summary["latency_ms"]
    row(f"hop latency n={latency['count']}", latency, " ms")
    if latency.get("worst_second_p95_before_window") is not None:
        lines.append(
            f"{'hop latency while joining (worst 1 s p95)':<34} "
            f"{_fmt(latency['worst_second_p95_before_window'], ' ms'):>29}"
        )
    lines += [
        "",
        f"joins: {joins['ok']}/{joins['attempted']} ok, {joins['failed']} failed, "
        f"{joins['rejoins']} rejoins, {joins['shed_and_retried']} refused as overloaded and "
        "retried",
        f"video fps per stream ({fps['video_streams']} streams): mean {_fmt(fps['mean'])}, "
        f"p5 {_fmt(fps['p5'])}, min {_fmt(fps['min'])}, below 25: {fps['below_25']}",
        f"packet loss: video {_fmt(loss['video']['ratio'])} "
        f"({loss['video']['lost_packets']}/{loss['video']['expected_packets']}), "
        f"audio {_fmt(loss['audio']['ratio'])}",
        f"decode sample: {summary['decode']['frames_decoded']} frames on "
        f"{summary['decode']['streams_sampled']} streams, {summary['decode']['errors']} errors, "
        f"sizes {summary['decode']['sizes']}",
        f"server: {_fmt(server.get('cpu_cores_mean'))} cores mean "
        f"(max {_fmt(server.get('cpu_cores_max'))}), "
        f"{_fmt(server.get('cpu_us_per_received_packet'))} us CPU per forwarded packet, "
        f"RSS {_fmt(server.get('rss_mb_end'))} MB (max {_fmt(server.get('rss_mb_max'))}), "
        f"{_fmt(server.get('video_streams'))} video streams",
        f"load generator: {_fmt(summary['loadgen_cores_mean'])} cores mean",
    ]
    if summary.get("loadgen_refusal"):
        lines.append(f"NOT A SERVER MEASUREMENT: {summary['loadgen_refusal']}")
    down = summary["downstream"]["student_kbps"]
    lines.append(
        f"downstream per student ({down['count']}): p50 {_fmt(down['p50'], ' kbps')}, "
        f"p95 {_fmt(down['p95'], ' kbps')}, max {_fmt(down['max'], ' kbps')}"
    )
    if fps["screen_streams"]:
        lines.append(f"screen: {fps['screen_streams']} streams, {_fmt(fps['screen_mean'])} fps")
    if summary["layers"]["events"]:
        lines.append(
            f"LAYERS events: {summary['layers']['events']}, "
            f"{summary['layers']['bandwidth_reduced']} tiles reduced for bandwidth"
        )
    if summary.get("activity"):
        lines += _activity_lines(summary["activity"])
    if server.get("metrics_error"):
        lines.append(f"server metrics: {server['metrics_error']}")
    for failure in joins["failures"][:10]:
        lines.append(
            f"failed {failure['kind']}: {failure['role']} {failure['user']}: {failure['reason']}"
        )
    if len(joins["failures"]) > 10:
        lines.append(f"... and {len(joins['failures']) - 10} more failed joins (see JSON)")
    for error in summary["peer_errors"][:5]:
        answered = f" (answering {error['event']})" if error.get("event") else ""
        lines.append(f"peer error: {error['user']}: {error['error']}{answered}")
    return "\n".join(lines)


def _activity_lines(activity: dict[str, Any]) -> list[str]:
    chat, hands, polls = activity["chat"], activity["hands"], activity["polls"]
    latency = chat["latency_ms"]
    return [
        f"chat: {chat['sent']} sent, {chat['delivered_to_teacher']} reached the teacher, "
        f"{chat['deliveries']} deliveries, latency p50 {_fmt(latency['p50'], ' ms')} "
        f"p95 {_fmt(latency['p95'], ' ms')}",
        f"hands: {hands['raised']} raised, {hands['heard_by_teacher']} heard by the teacher, "
        f"{hands['lowered']} lowered",
        f"polls: {polls['run']} run, {polls['ended']} ended, "
        f"{polls['votes_acknowledged']} votes acknowledged, {polls['result_votes']} in the "
        f"results, {polls['results_matching']} results matching their acknowledgements",
    ]

"""What a crash left behind: a recording that never stopped, rebuilt from its files."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sfu.track_file import read_segment

from ..models import ComposeJob, Recording, RecordingFile
from .live import USER_TAG

INTERRUPTED = "Server stopped while recording"


def recovered_recording(recording: Recording, directory: Path) -> Recording:
    """``recording`` stopped at its newest file's last write, with every segment file found
    in ``directory`` (each file's header says whose it is and where it starts); blocking."""
    files: list[RecordingFile] = []
    last_write = recording.started_at
    for path in sorted(directory.glob("*.mkv")) if directory.is_dir() else []:
        track, tags = read_segment(path)
        if track.frames == 0:
            continue
        files.append(
            RecordingFile(
                name=path.name,
                user_id=tags.get(USER_TAG, track.participant_id),
                kind=track.kind,
                offset=track.offset,
                duration=track.duration,
                size=track.size,
                source=track.source,
            )
        )
        last_write = max(last_write, datetime.fromtimestamp(path.stat().st_mtime, UTC))
    files.sort(key=lambda f: (f.offset, f.name))
    return replace(
        recording,
        status="stopped",
        stopped_at=last_write.replace(microsecond=last_write.microsecond // 1000 * 1000),
        stop_reason=INTERRUPTED,
        participants=tuple(dict.fromkeys(f.user_id for f in files)),
        files=tuple(files),
        job=ComposeJob(),
    )

"""What the store keeps about one recording: its files, participants and compose job."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from ..timeutil import iso_ms, parse_iso

RecordingStatus = Literal["recording", "stopped"]
JobStatus = Literal["pending", "running", "done", "failed"]


@dataclass(frozen=True)
class RecordingFile:
    """One segment file: a participant's audio or video from `offset` seconds on."""

    name: str
    user_id: str
    kind: str
    offset: float
    duration: float
    size: int

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "userId": self.user_id,
            "kind": self.kind,
            "offset": round(self.offset, 3),
            "duration": round(self.duration, 3),
            "size": self.size,
        }


@dataclass(frozen=True)
class ComposeJob:
    """The offline grid composition; `file` is set once it is done."""

    status: JobStatus = "pending"
    progress: float = 0.0
    error: str | None = None
    file: str | None = None
    size: int | None = None
    duration: float | None = None

    def public(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "progress": round(self.progress, 4),
            "error": self.error,
            "file": self.file,
            "size": self.size,
            "duration": self.duration,
        }


@dataclass(frozen=True)
class Recording:
    """A recording of one class session, from start to stop (or the size limit)."""

    id: str
    class_id: str
    session_id: str
    started_by: str
    started_at: datetime
    status: RecordingStatus = "recording"
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    participants: tuple[str, ...] = ()
    files: tuple[RecordingFile, ...] = ()
    job: ComposeJob = field(default_factory=ComposeJob)

    def with_job(self, **changes: Any) -> Recording:
        return replace(self, job=replace(self.job, **changes))

    def public(self) -> dict[str, Any]:
        return {
            "recordingId": self.id,
            "classId": self.class_id,
            "sessionId": self.session_id,
            "startedBy": self.started_by,
            "startedAt": iso_ms(self.started_at),
            "stoppedAt": iso_ms(self.stopped_at) if self.stopped_at else None,
            "status": self.status,
            "stopReason": self.stop_reason,
            "participants": list(self.participants),
            "files": [f.public() for f in self.files],
            "job": self.job.public(),
        }


def recording_doc(recording: Recording) -> dict[str, Any]:
    """A JSON-ready document (dates as ISO strings) both stores keep whole."""
    doc = recording.public()
    del doc["recordingId"]
    return doc


def recording_from_doc(recording_id: str, doc: dict[str, Any]) -> Recording:
    """Inverse of :func:`recording_doc`."""
    job = doc.get("job") or {}
    return Recording(
        id=recording_id,
        class_id=doc["classId"],
        session_id=doc["sessionId"],
        started_by=doc["startedBy"],
        started_at=parse_iso(doc["startedAt"]),
        status=doc["status"],
        stopped_at=parse_iso(doc["stoppedAt"]) if doc.get("stoppedAt") else None,
        stop_reason=doc.get("stopReason"),
        participants=tuple(doc.get("participants") or ()),
        files=tuple(
            RecordingFile(
                name=f["name"],
                user_id=f["userId"],
                kind=f["kind"],
                offset=float(f["offset"]),
                duration=float(f["duration"]),
                size=int(f["size"]),
            )
            for f in doc.get("files") or ()
        ),
        job=ComposeJob(
            status=job.get("status", "pending"),
            progress=float(job.get("progress", 0.0)),
            error=job.get("error"),
            file=job.get("file"),
            size=job.get("size"),
            duration=job.get("duration"),
        ),
    )

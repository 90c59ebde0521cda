"""Starting, stopping, listing and deleting a class's recordings; the rules around them.

Files live in ``<RECORDINGS_DIR>/<classId>/<recordingId>/``: one Matroska file per
recorded track segment (``sfu.recorder``) and, once composed, ``composed.webm``. All
recordings together may take ``RECORDINGS_MAX_BYTES``; a recording starts only if that
budget and the disk leave at least ``MIN_START_BYTES``, and stops by itself when either
runs out.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .. import access
from ..config import Settings
from ..errors import NO_ACTIVE_SESSION, Conflict, Forbidden, InsufficientStorage, NotFound
from ..ids import is_object_id, new_id
from ..models import ClassRecord, Recording, User
from ..rooms.manager import RoomManager
from ..rooms.room import ClassRoom
from ..store import Store
from ..timeutil import utcnow
from .compose_job import COMPOSED_NAME, run_compose
from .live import LiveRecording
from .recovery import recovered_recording
from .storage import directory_bytes

log = logging.getLogger(__name__)

MIN_START_BYTES = 64 * 1024
DISK_RESERVE_BYTES = 64 * 1024 * 1024
RECORDING_ACTIVE = "Recording already in progress"
NOT_RECORDING = "No recording in progress"
ROOM_NOT_OPEN = "Nobody has joined the room yet; join it before recording"
STORAGE_FULL = "Recording storage is full: {used} of {limit} bytes used, {free} bytes free on disk"
RECORDING_NOT_FOUND = "Recording not found"
FILE_NOT_FOUND = "Recording file not found"
NOT_COMPOSED = "Composed file is not ready"
STILL_RECORDING = "Stop the recording before deleting it"
NOT_SHARED = "Forbidden, recordings are not shared with students"


def require_reader(user: User, cls: ClassRecord) -> None:
    """The owning teacher, or an enrolled student when the class shares recordings."""
    if user.role == "student":
        access.require_enrolled(user, cls)
        if not cls.allow_student_recordings:
            raise Forbidden(NOT_SHARED)
    else:
        access.require_owner(user, cls)


class RoomElsewhere(Protocol):
    """In a cluster: the node that holds a class's room when this one does not
    (``api.relay.signalling``). Each returns None when the room is not elsewhere either."""

    async def start_recording(self, user: User, cls: ClassRecord) -> Recording | None: ...

    async def stop_recording(self, user: User, cls: ClassRecord) -> Recording | None: ...


@dataclass(frozen=True)
class _Live:
    """A recording in progress and the room it records."""

    room: ClassRoom
    recording: LiveRecording


class RecordingService:
    """One per server: the live recordings of rooms and the compose jobs after them."""

    def __init__(self, settings: Settings, store: Store, rooms: RoomManager) -> None:
        self.root = settings.recordings_path
        self.max_bytes = settings.recordings_max_bytes
        self._store = store
        self._rooms = rooms
        self._jobs: dict[str, asyncio.Task[Recording]] = {}
        self.elsewhere: RoomElsewhere | None = None
        self._live: dict[str, _Live] = {}
        """By recording id, until the recording has finished."""

    def directory(self, recording: Recording) -> Path:
        return self.root / recording.class_id / recording.id

    # -- live ---------------------------------------------------------------
    async def start(self, user: User, cls: ClassRecord) -> Recording:
        """Record the class's live room from now on (owning teacher only)."""
        access.require_teacher(user)
        access.require_owner(user, cls)
        session = await self._store.get_active_session(cls.id)
        if session is None:
            raise Conflict(NO_ACTIVE_SESSION)
        room = self._rooms.room_for_session(session.id)
        if (room is None or room.closed) and self.elsewhere is not None:
            remote = await self.elsewhere.start_recording(user, cls)
            if remote is not None:
                return remote
        if room is None or room.closed:
            raise Conflict(ROOM_NOT_OPEN)
        if room.recording is not None:
            raise Conflict(RECORDING_ACTIVE)
        budget = await self._budget()
        if room.recording is not None:  # started meanwhile
            raise Conflict(RECORDING_ACTIVE)
        recording = Recording(
            id=new_id(),
            class_id=cls.id,
            session_id=session.id,
            started_by=user.id,
            started_at=utcnow(),
        )
        await self._store.put_recording(recording)
        live = LiveRecording(
            recording,
            self.directory(recording),
            (p for p in room.router.producers.values()),
            budget,
            self._end,
        )
        room.recording = live
        self._live[recording.id] = _Live(room, live)
        room.broadcast("RECORDING", live.public())
        log.info("recording %s of class %s started", recording.id, cls.id)
        return recording

    async def stop(self, user: User, cls: ClassRecord) -> Recording:
        """Stop the class's recording; its compose job starts in the background."""
        access.require_teacher(user)
        access.require_owner(user, cls)
        found = next((live for live in self._live.values() if live.room.cls.id == cls.id), None)
        if found is None and self.elsewhere is not None:
            remote = await self.elsewhere.stop_recording(user, cls)
            if remote is not None:
                return remote
        if found is None or found.room.recording is not found.recording:
            raise Conflict(NOT_RECORDING)
        live = found.recording
        await live.end(None)
        stopped = await self._store.get_recording(live.recording.id)
        assert stopped is not None
        return stopped

    async def _end(self, live: LiveRecording, reason: str | None) -> None:
        found = self._live.pop(live.recording.id, None)
        room = found.room if found is not None else None
        stopped = await live.finish(reason)
        if room is not None and room.recording is live:
            room.recording = None
            room.broadcast(
                "RECORDING",
                {"active": False, "recordingId": stopped.id, "reason": stopped.stop_reason},
            )
        await self._store.put_recording(stopped)
        log.info("recording %s stopped (%s)", stopped.id, stopped.stop_reason or "by teacher")
        self._start_job(stopped)

    def _start_job(self, recording: Recording) -> None:
        task = asyncio.get_running_loop().create_task(
            run_compose(self._store, recording, self.directory(recording))
        )
        self._jobs[recording.id] = task
        task.add_done_callback(lambda _: self._jobs.pop(recording.id, None))

    async def recover(self) -> None:
        """At start: close recordings a crash left open (their files survive it) and rerun
        compose jobs that never finished."""
        for recording in await self._store.list_unfinished_recordings():
            if recording.status == "recording":
                recording = await asyncio.to_thread(
                    recovered_recording, recording, self.directory(recording)
                )
                await self._store.put_recording(recording)
                log.warning("recording %s was interrupted; recovered", recording.id)
            self._start_job(recording)

    async def _budget(self) -> int:
        """Bytes a new recording may write; ``InsufficientStorage`` if too few are left."""
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        used = await asyncio.to_thread(directory_bytes, self.root)
        free = (await asyncio.to_thread(shutil.disk_usage, self.root)).free
        budget = min(self.max_bytes - used, free - DISK_RESERVE_BYTES)
        if budget < MIN_START_BYTES:
            raise InsufficientStorage(
                STORAGE_FULL.format(used=used, limit=self.max_bytes, free=free)
            )
        return budget

    # -- stored -------------------------------------------------------------
    async def list(self, user: User, cls: ClassRecord) -> list[Recording]:
        require_reader(user, cls)
        return await self._store.list_recordings(cls.id)

    async def get(self, user: User, cls: ClassRecord, recording_id: str) -> Recording:
        require_reader(user, cls)
        recording = (
            await self._store.get_recording(recording_id) if is_object_id(recording_id) else None
        )
        if recording is None or recording.class_id != cls.id:
            raise NotFound(RECORDING_NOT_FOUND)
        return recording

    async def file_path(self, user: User, cls: ClassRecord, recording_id: str, name: str) -> Path:
        """A segment file's path (names come from the stored list, never from the URL)."""
        recording = await self.get(user, cls, recording_id)
        if name not in {f.name for f in recording.files}:
            raise NotFound(FILE_NOT_FOUND)
        return self.directory(recording) / name

    async def composed_path(self, user: User, cls: ClassRecord, recording_id: str) -> Path:
        recording = await self.get(user, cls, recording_id)
        if recording.job.status != "done" or recording.job.file is None:
            raise Conflict(NOT_COMPOSED)
        return self.directory(recording) / COMPOSED_NAME

    async def delete(self, user: User, cls: ClassRecord, recording_id: str) -> None:
        """Delete the files and the metadata (owning teacher; not while recording)."""
        access.require_teacher(user)
        recording = await self.get(user, cls, recording_id)
        if recording.id in self._live:
            raise Conflict(STILL_RECORDING)
        job = self._jobs.pop(recording.id, None)
        if job is not None:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, self.directory(recording), ignore_errors=True)
        await self._store.delete_recording(recording.id)

    async def wait_for_job(self, recording_id: str) -> None:
        """Until the recording's compose job (if any) has finished; for tests and shutdown."""
        job = self._jobs.get(recording_id)
        if job is not None:
            await asyncio.gather(job, return_exceptions=True)

    async def close(self) -> None:
        """Cancel compose jobs (their subprocesses are killed)."""
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

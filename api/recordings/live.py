"""The recording of one live room: an ``sfu.Recorder`` plus who each file belongs to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sfu import Producer
from sfu.ids import TOP_LAYER
from sfu.recorder import Recorder
from sfu.track_file import RecordedTrack

from ..models import Recording, RecordingFile
from ..timeutil import utcnow

USER_TAG = "user_id"
"""The segment-file tag naming the user, read back by crash recovery."""


class LiveRecording:
    """Records the room's ``producers`` from now on, and later joiners' too.

    The room calls :meth:`add_producer` / :meth:`remove_producer` as producers come and go,
    and :meth:`room_closed` when its media ends; ``on_end`` then finishes the recording.
    """

    def __init__(
        self,
        recording: Recording,
        directory: Path,
        producers: Iterable[Producer],
        max_bytes: int,
        on_end: Callable[[LiveRecording, str | None], Awaitable[None]],
    ) -> None:
        self.recording = recording
        self.directory = directory
        self._on_end = on_end
        self._users: dict[str, str] = {}
        self.recorder = Recorder(directory, max_bytes=max_bytes, on_stopped=self._limit)
        self._end_started = False
        self._tasks: set[asyncio.Task[None]] = set()
        for producer in producers:
            self.add_producer(producer)

    def public(self) -> dict[str, Any]:
        """What ``RECORDING`` and ``ROOM_JOINED`` tell clients."""
        return {"active": True, "recordingId": self.recording.id}

    def add_producer(self, producer: Producer) -> None:
        """Record ``producer`` from now on: only the top layer of a layered camera."""
        if producer.layer != TOP_LAYER:
            return
        user_id = producer.app_data.get("userId") or producer.participant_id
        self._users[producer.participant_id] = str(user_id)
        self.recorder.add_producer(producer, {USER_TAG: str(user_id)})

    def remove_producer(self, producer: Producer) -> None:
        self.recorder.remove_producer(producer)

    async def room_closed(self) -> None:
        await self.end(None)

    async def end(self, reason: str | None) -> None:
        """Finish once (stop, size limit or room closed); later calls do nothing."""
        if self._end_started:
            return
        self._end_started = True
        await self._on_end(self, reason)

    async def finish(self, reason: str | None) -> Recording:
        """Stop the recorder and describe what it wrote."""
        stopped_at = utcnow()  # media stops being taken now; finishing files takes longer
        tracks = await self.recorder.stop()
        files = tuple(self._file(track) for track in tracks)
        return replace(
            self.recording,
            status="stopped",
            stopped_at=stopped_at,
            stop_reason=reason or self.recorder.stop_reason,
            participants=tuple(dict.fromkeys(f.user_id for f in files)),
            files=files,
        )

    def _file(self, track: RecordedTrack) -> RecordingFile:
        return RecordingFile(
            name=track.path.name,
            user_id=self._users.get(track.participant_id, track.participant_id),
            kind=track.kind,
            offset=track.offset,
            duration=track.duration,
            size=track.size,
            source=track.source,
        )

    def _limit(self, reason: str) -> None:
        # Called on the loop by the recorder when the size limit or the disk is reached.
        task = asyncio.get_running_loop().create_task(self.end(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

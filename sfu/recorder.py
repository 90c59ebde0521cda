"""Records producers to disk by remuxing their encoded frames: just another frame sink.

Layout: one Matroska file per producer (track), named `<participant>-<kind>-<n>.mkv`,
or `<participant>-screen-<n>.mkv` for a screen share (a video track apart from the
camera; each file's header and `RecordedTrack.source` say which). A participant who
leaves and rejoins during a recording gets new segment files; each file's `offset`
(seconds after the recording began, from the arrival of its first frame) places it on
the recording's timeline. Inside a file, timestamps are the publisher's RTP timestamps,
so a pause in the media is a gap in the file, not a jump. Video files start at a
keyframe (one is requested on attach).

The event loop only copies each frame into a bounded queue; one writer thread per
recording muxes and writes. When the queue is full, frames are dropped and the video
track resumes at the next (requested) keyframe. When `max_bytes` is reached or the disk
is full, writing stops, every file is finished, and `on_stopped(reason)` is called on the
loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sfu.heap import return_freed_memory
from sfu.media_frame import MediaFrame
from sfu.producer import Producer
from sfu.track_file import RecordedTrack, TrackFile

logger = logging.getLogger(__name__)

QUEUE_FRAMES = 2048
LIMIT_REACHED = "Recording size limit reached"
DISK_FULL = "Disk full while recording"


@dataclass(frozen=True)
class _Frame:
    file: TrackFile
    data: bytes
    pts: int
    keyframe: bool
    arrived: float


@dataclass(frozen=True)
class _Close:
    file: TrackFile


class _Tap:
    """The sink attached to one producer: copies each frame into the recorder's queue."""

    def __init__(self, recorder: Recorder, producer: Producer, file: TrackFile) -> None:
        self.recorder = recorder
        self.producer = producer
        self.file = file
        self.dropping = False

    def __call__(self, frame: MediaFrame) -> None:
        if self.dropping and not frame.keyframe and self.producer.kind == "video":
            return
        if not self.recorder._room.acquire(blocking=False):
            self.recorder.dropped_frames += 1
            if not self.dropping:
                self.dropping = True
                self.producer.request_keyframe()
            return
        item = _Frame(self.file, bytes(frame.packet), frame.pts, frame.keyframe, time.monotonic())
        self.recorder._items.put(item)
        # A video track resumes on a keyframe, so the file stays decodable.
        self.dropping = False


class Recorder:
    """Writes every attached producer into its own file under `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int | None = None,
        on_stopped: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.started_at = time.monotonic()
        self.bytes = 0
        self.dropped_frames = 0
        self.stop_reason: str | None = None
        self._on_stopped = on_stopped
        self._loop = asyncio.get_running_loop()
        # Unbounded queue, bounded frame count: control items never wait, frames beyond
        # QUEUE_FRAMES in flight are dropped; the event loop never blocks on the writer.
        self._items: queue.SimpleQueue[_Frame | _Close | None] = queue.SimpleQueue()
        self._room = threading.BoundedSemaphore(QUEUE_FRAMES)
        self._taps: dict[str, _Tap] = {}
        self._segments: dict[tuple[str, str], int] = {}
        self._finished: list[RecordedTrack] = []
        self._lock = threading.Lock()
        self._stopped = False
        directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return not self._stopped and self.stop_reason is None

    def add_producer(self, producer: Producer, tags: Mapping[str, str] | None = None) -> None:
        """Start recording `producer` in a new segment file; no-op if already recorded.
        `tags` go into the file's header (e.g. who the participant is)."""
        if not self.active or producer.closed or producer.id in self._taps:
            return
        label = "screen" if producer.source == "screen" else producer.kind
        key = (producer.participant_id, label)
        number = self._segments.get(key, 0) + 1
        self._segments[key] = number
        file = TrackFile(
            self.directory / f"{producer.participant_id}-{label}-{number}.mkv",
            participant_id=producer.participant_id,
            kind=producer.kind,
            codec=producer.codec.name,
            clock_rate=producer.codec.clock_rate,
            recording_start=self.started_at,
            tags=tags,
            source=producer.source,
        )
        tap = _Tap(self, producer, file)
        self._taps[producer.id] = tap
        producer.add_sink(tap)
        producer.request_keyframe()

    def remove_producer(self, producer: Producer) -> None:
        """Finish `producer`'s current segment (it left or stopped publishing)."""
        tap = self._taps.pop(producer.id, None)
        if tap is None:
            return
        producer.remove_sink(tap)
        self._put_control(_Close(tap.file))

    async def stop(self) -> list[RecordedTrack]:
        """Detach from every producer, finish every file; returns the segments written."""
        if not self._stopped:
            self._stopped = True
            for tap in self._taps.values():
                tap.producer.remove_sink(tap)
                self._put_control(_Close(tap.file))
            self._taps.clear()
            self._put_control(None)
        await asyncio.to_thread(self._thread.join)
        with self._lock:
            return sorted(self._finished, key=lambda t: (t.offset, t.path.name))

    # -------------------------------------------------------------- writer thread

    def _put_control(self, item: _Close | None) -> None:
        self._items.put(item)

    def _run(self) -> None:
        open_files: set[TrackFile] = set()
        while True:
            item = self._items.get()
            if item is None:
                break
            if isinstance(item, _Close):
                open_files.discard(item.file)
                self._finish(item.file)
            else:
                self._room.release()
                if self.stop_reason is None:
                    open_files.add(item.file)
                    self._write(item, open_files)
        for file in open_files:
            self._finish(file)
        return_freed_memory()  # the muxers' buffers, once every file is closed

    def _write(self, item: _Frame, open_files: set[TrackFile]) -> None:
        try:
            self.bytes += item.file.write(item.data, item.pts, item.keyframe, item.arrived)
        except OSError as error:
            reason = DISK_FULL if error.errno == errno.ENOSPC else f"Recording failed: {error}"
            self._halt(reason, open_files)
            return
        if self.max_bytes is not None and self.bytes >= self.max_bytes:
            self._halt(LIMIT_REACHED, open_files)

    def _halt(self, reason: str, open_files: set[TrackFile]) -> None:
        logger.warning("recording in %s stopped: %s", self.directory, reason)
        self.stop_reason = reason
        for file in list(open_files):
            self._finish(file)
        open_files.clear()
        if self._on_stopped is not None:
            self._loop.call_soon_threadsafe(self._on_stopped, reason)

    def _finish(self, file: TrackFile) -> None:
        try:
            track = file.close()
        except Exception:
            logger.exception("could not finish %s", file.path)
            return
        if track is not None:
            with self._lock:
                self._finished.append(track)

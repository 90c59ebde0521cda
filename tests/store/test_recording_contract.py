"""Recording metadata: the same behaviour on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from api.ids import new_id
from api.models import ComposeJob, Recording, RecordingFile
from api.store import Store
from api.store.records import recording_doc, recording_from_doc
from tests.store.test_store_contract import T0, malformed_ids


def recording(class_id: str, minutes: int = 0) -> Recording:
    return Recording(
        id=new_id(),
        class_id=class_id,
        session_id=new_id(),
        started_by=new_id(),
        started_at=T0 + timedelta(minutes=minutes),
    )


async def test_a_recording_round_trips_and_is_replaced_whole(store: Store) -> None:
    class_id = new_id()
    started = recording(class_id)
    await store.put_recording(started)
    assert await store.get_recording(started.id) == started

    user = new_id()
    stopped = replace(
        started,
        status="stopped",
        stopped_at=T0 + timedelta(seconds=61, milliseconds=250),
        stop_reason="Recording size limit reached",
        participants=(user, new_id()),
        files=(
            RecordingFile("a-video-1.mkv", user, "video", 0.125, 60.5, 1_234_567),
            RecordingFile("a-audio-1.mkv", user, "audio", 0.0, 61.0, 98_765),
            RecordingFile("a-screen-1.mkv", user, "video", 2.5, 30.0, 765_432, "screen"),
        ),
        job=ComposeJob(status="running", progress=0.5),
    )
    await store.put_recording(stopped)
    assert await store.get_recording(started.id) == stopped

    done = stopped.with_job(
        status="done", progress=1.0, file="composed.webm", size=9, duration=61.0
    )
    await store.put_recording(done)
    assert await store.get_recording(started.id) == done
    failed = done.with_job(status="failed", error="ValueError: broken")
    await store.put_recording(failed)
    assert (await store.get_recording(started.id)) == failed


async def test_a_class_lists_only_its_recordings_newest_first(store: Store) -> None:
    class_id, other = new_id(), new_id()
    first, second, third = (recording(class_id, m) for m in (0, 5, 10))
    for item in (second, third, first, recording(other)):
        await store.put_recording(item)
    assert [r.id for r in await store.list_recordings(class_id)] == [third.id, second.id, first.id]
    assert await store.list_recordings(new_id()) == []


async def test_a_deleted_recording_is_gone_and_unknown_ids_find_nothing(store: Store) -> None:
    kept, dropped = recording(new_id()), recording(new_id())
    await store.put_recording(kept)
    await store.put_recording(dropped)
    assert await store.delete_recording(dropped.id) is True
    assert await store.delete_recording(dropped.id) is False
    assert await store.get_recording(dropped.id) is None
    assert await store.get_recording(kept.id) == kept
    for bad in malformed_ids():
        assert await store.get_recording(bad) is None
        assert await store.delete_recording(bad) is False


async def test_unfinished_recordings_are_those_recording_or_composing(store: Store) -> None:
    live = recording(new_id(), 0)
    pending = replace(recording(new_id(), 1), status="stopped", stopped_at=T0)
    running = replace(pending, id=new_id()).with_job(status="running", progress=0.3)
    done = replace(pending, id=new_id()).with_job(status="done", progress=1.0)
    failed = replace(pending, id=new_id()).with_job(status="failed", error="x")
    for item in (running, done, live, failed, pending):
        await store.put_recording(item)
    unfinished = await store.list_unfinished_recordings()
    assert {r.id for r in unfinished} == {live.id, pending.id, running.id}
    assert unfinished[0].id == live.id


def test_files_stored_before_sources_were_recorded_read_as_their_kinds_default() -> None:
    doc = recording_doc(recording(new_id()))
    doc["files"] = [
        {
            "name": "a-video-1.mkv",
            "userId": "u",
            "kind": "video",
            "offset": 0.0,
            "duration": 1.0,
            "size": 10,
        },
        {
            "name": "a-audio-1.mkv",
            "userId": "u",
            "kind": "audio",
            "offset": 0.0,
            "duration": 1.0,
            "size": 10,
        },
    ]
    files = recording_from_doc(new_id(), doc).files
    assert [f.source for f in files] == ["camera", "microphone"]
    assert [f.public()["source"] for f in files] == ["camera", "microphone"]

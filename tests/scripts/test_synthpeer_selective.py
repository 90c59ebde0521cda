"""The synthetic peers' side of selective forwarding, against a real server process:
two camera layers and the ``tracks`` map, the page's ``SUBSCRIPTION`` kept in step with
the roster, ``LAYERS``, a shared screen, and muted microphones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from scripts.load.population import ClassPlan, build_population
from scripts.synthpeer.api_client import Account, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, camera_layers, screen_clip
from scripts.synthpeer.peer import MediaFailed, SyntheticPeer
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig
from tests.server_process import ServerProcess
from tests.waiting import wait_until

HIGH, LOW, SCREEN = (640, 360), (320, 180), (960, 540)

PeerFactory = Callable[..., Awaitable[SyntheticPeer]]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ClassroomApi]:
    server = ServerProcess(
        {"DATA_DIR": str(tmp_path / "data"), "ICE_ADDRESSES": "127.0.0.1"},
        tmp_path / "server.log",
    )
    await server.start()
    try:
        async with ClassroomApi(server.base_url) as client:
            yield client
    finally:
        server.stop()


async def _class(api: ClassroomApi, students: int) -> ClassPlan:
    plans, failures = await build_population(api, 1, students, concurrency=4)
    assert failures == [] and plans[0].live
    return plans[0]


@pytest.fixture
async def peers(api: ClassroomApi) -> AsyncIterator[PeerFactory]:
    made: list[SyntheticPeer] = []
    layers = camera_layers(frames=60)

    async def make(account: Account, class_id: str, *, tiles: int | None = None) -> SyntheticPeer:
        def media(config: MediaConfig) -> MediaClient:
            return MediaClient(
                config,
                video=layers.high,
                low_video=layers.low,
                audio=ToneAudioTrack(),
                decode="none",
                dtx=tiles is not None,
            )

        peer = SyntheticPeer(api, account, media, class_id=class_id, tiles=tiles)
        made.append(peer)
        await peer.join()
        return peer

    yield make
    for peer in made:
        await peer.close()


def _sink(peer: SyntheticPeer, user_id: str, source: str) -> StreamSink | None:
    assert peer.media is not None
    return peer.media.sink_of(user_id, source)


def _frames(peer: SyntheticPeer, user_id: str, source: str) -> int:
    sink = _sink(peer, user_id, source)
    return 0 if sink is None else sink.frames


def _latest_keyframe(peer: SyntheticPeer, user_id: str, source: str) -> tuple[int, int] | None:
    sink = _sink(peer, user_id, source)
    return sink.keyframe_sizes[-1] if sink is not None and sink.keyframe_sizes else None


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async def checked() -> bool:
        return check()

    await wait_until(checked, timeout)


async def _frames_while(
    peer: SyntheticPeer, watched: tuple[str, str], clock: tuple[str, str], ticks: int
) -> int:
    """Frames of `watched` (user, source) that arrive while `clock` delivers `ticks` more:
    a bound by causality (another stream's progress), not by time."""
    before, start = _frames(peer, *watched), _frames(peer, *clock)
    await _until(lambda: _frames(peer, *clock) >= start + ticks)
    return _frames(peer, *watched) - before


async def test_the_page_subscription_gets_the_teacher_high_one_tile_low_the_rest_off(
    api: ClassroomApi, peers: PeerFactory
) -> None:
    plan = await _class(api, 4)
    teacher = await peers(plan.teacher, plan.class_id)
    others = [await peers(s, plan.class_id) for s in plan.students[:3]]
    viewer = await peers(plan.students[3], plan.class_id, tiles=1)
    assert viewer.media is not None and viewer.subscription is not None
    # The tracks map names each m-section: the camera twice, one per layer.
    assert list(viewer.media.publish_tracks().values()) == [
        {"source": "microphone"},
        {"source": "camera", "layer": "high"},
        {"source": "camera", "layer": "low"},
    ]
    wanted = viewer.subscription.wanted()
    tile = next(u for u, c in wanted.items() if c.get("camera") == "low")
    off = [u for u, c in wanted.items() if c.get("camera") == "off"]
    assert wanted[teacher.user_id]["camera"] == "high" and len(off) == 2
    assert viewer.subscriptions_sent and viewer.subscriptions_sent[0] == wanted

    await _until(
        lambda: (
            viewer.layers.current.get(tile, {}).get("camera") == "low"
            and all(viewer.layers.current.get(u, {}).get("camera") == "off" for u in off)
        )
    )
    assert viewer.layers.current[teacher.user_id]["camera"] == "high"
    assert {e.get("reason") for e in viewer.layers.current.values()} == {"requested"}
    await _until(
        lambda: (
            _latest_keyframe(viewer, tile, "camera") == LOW
            and _latest_keyframe(viewer, teacher.user_id, "camera") == HIGH
        )
    )
    for user in off:  # nothing of a camera asked off, while the tile shows 30 frames
        assert await _frames_while(viewer, (user, "camera"), (tile, "camera"), 30) <= 1
        assert await _frames_while(viewer, (user, "microphone"), (tile, "camera"), 5) > 0
    # Everyone received by the viewer is labelled by user and source.
    assert {s.source for s in viewer.media.received.values()} <= {"camera", "microphone"}
    assert {s.participant_id for s in viewer.media.received.values()} <= {
        teacher.user_id,
        *(o.user_id for o in others),
    }
    # A peer that sends no SUBSCRIPTION gets every camera in layer high.
    plain = others[0]
    await _until(
        lambda: all(
            _latest_keyframe(plain, o.user_id, "camera") == HIGH for o in [teacher, *others[1:]]
        )
    )

    # The tile leaves: the page gives it to the next student, in layer low.
    leaving = next(o for o in others if o.user_id == tile)
    await leaving.leave()
    await _until(lambda: tile not in viewer.subscription.wanted() if viewer.subscription else False)
    promoted = next(u for u, c in viewer.subscription.wanted().items() if c.get("camera") == "low")
    assert promoted in off
    await _until(lambda: viewer.layers.current.get(promoted, {}).get("camera") == "low")
    await _until(lambda: _latest_keyframe(viewer, promoted, "camera") == LOW)
    assert viewer.errors == [] and teacher.errors == []


async def test_a_teacher_shares_a_screen_and_a_student_may_not(
    api: ClassroomApi, peers: PeerFactory
) -> None:
    plan = await _class(api, 2)
    teacher = await peers(plan.teacher, plan.class_id)
    student = await peers(plan.students[0], plan.class_id, tiles=8)
    clip = screen_clip(frames=10, width=SCREEN[0], height=SCREEN[1])

    await teacher.share_screen(clip)
    assert teacher.media is not None
    assert {"source": "screen"} in teacher.media.publish_tracks().values()
    await _until(lambda: student.screen_share == teacher.user_id)
    await _until(lambda: teacher.screen_share == teacher.user_id)
    await _until(lambda: _frames(student, teacher.user_id, "screen") >= 3)
    assert _latest_keyframe(student, teacher.user_id, "screen") == SCREEN
    assert student.layers.current[teacher.user_id].get("screen") == "on"

    late = await peers(plan.students[1], plan.class_id)
    assert late.room.get("screenShare") == teacher.user_id
    with pytest.raises(MediaFailed, match="Forbidden, only the teacher may share a screen"):
        await late.share_screen(clip)

    await teacher.stop_screen()
    await _until(lambda: student.screen_share is None and late.screen_share is None)
    assert teacher.errors == [] and student.errors == []


async def test_students_share_when_the_class_allows_it_one_at_a_time_and_the_teacher_takes_over(
    api: ClassroomApi, peers: PeerFactory
) -> None:
    plan = await _class(api, 2)
    teacher = await peers(plan.teacher, plan.class_id)
    first = await peers(plan.students[0], plan.class_id)
    second = await peers(plan.students[1], plan.class_id)
    clip = screen_clip(frames=10, width=SCREEN[0], height=SCREEN[1])
    # Allowed while the room is live: the setting is read at each screen offer.
    path, settings = f"/class/{plan.class_id}/settings", {"allowStudentScreenShare": True}
    await api.call("PUT", path, token=plan.teacher.token, body=settings)

    await first.share_screen(clip)
    await _until(lambda: teacher.screen_share == first.user_id)
    await _until(lambda: _frames(teacher, first.user_id, "screen") >= 3)
    with pytest.raises(MediaFailed, match="Someone else is sharing a screen; wait until they stop"):
        await second.share_screen(clip)

    await teacher.share_screen(clip)  # the teacher's share takes over
    await _until(lambda: first.screen_share == teacher.user_id)
    await _until(lambda: second.screen_share == teacher.user_id)
    await _until(lambda: _frames(second, teacher.user_id, "screen") >= 3)
    # The student's share, still sent, reaches nobody any more.
    taken_over = _frames(second, first.user_id, "screen")
    await _frames_while(second, (teacher.user_id, "screen"), (teacher.user_id, "camera"), 30)
    assert _frames(second, first.user_id, "screen") <= taken_over + 1
    # Stopping the taken-over share renegotiates fine: an inactive screen shares nothing.
    await first.stop_screen()
    assert teacher.screen_share == teacher.user_id
    assert teacher.errors == [] and first.errors == []


@pytest.mark.parametrize("keep_sending", [True, False], ids=["keeps-sending", "stops-sending"])
async def test_a_muted_microphone_is_not_heard(
    api: ClassroomApi, peers: PeerFactory, keep_sending: bool
) -> None:
    plan = await _class(api, 2)
    teacher = await peers(plan.teacher, plan.class_id)
    muted = await peers(plan.students[0], plan.class_id)
    listener = await peers(plan.students[1], plan.class_id)
    await _until(
        lambda: (
            _frames(listener, muted.user_id, "microphone") > 0
            and _frames(listener, teacher.user_id, "microphone") > 0
        )
    )
    assert muted.media is not None and isinstance(muted.media.audio_track, ToneAudioTrack)
    track = muted.media.audio_track

    await muted.set_microphone(False, keep_sending=keep_sending)
    assert listener.socket is not None
    state = await listener.socket.next("MEDIA_STATE", where=lambda d: d["userId"] == muted.user_id)
    assert state["audio"] is False
    sent = track.frames_sent
    # While the teacher's microphone delivers 50 packets (1 s of audio): nothing of it.
    heard = await _frames_while(
        listener, (muted.user_id, "microphone"), (teacher.user_id, "microphone"), 50
    )
    assert heard <= 2
    if keep_sending:
        assert track.frames_sent >= sent + 25  # the server, not the client, kept it quiet
    else:
        assert track.frames_sent <= sent + 1

    await muted.set_microphone(True)
    unmuted_at = _frames(listener, muted.user_id, "microphone")
    await _until(lambda: _frames(listener, muted.user_id, "microphone") >= unmuted_at + 10)

"""Real aiortc peers on loopback publish to a Router and receive each other's media."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
import pytest
from aiortc.codecs import get_decoder

from scripts.support.loopback import CLIP_FRAMES, SEND_CONFIGS, Room, wait_for
from sfu import aiortc_adapter, native_send
from sfu.aiortc_adapter import DecoderQueueStub
from sfu.consumer import DirectOutput
from sfu.direct_send import Route

NAMES = ("teacher", "student1", "student2")


@pytest.mark.parametrize("send", SEND_CONFIGS)
async def test_teacher_and_two_students_each_decode_the_others_streams_labelled_by_publisher(
    send: str,
) -> None:
    room = Room(SEND_CONFIGS[send])
    try:
        await _three_participants(room)
        consumers = [c for p in room.router.producers.values() for c in p.consumers.values()]
        outputs = [c._output for c in consumers]
        assert len(outputs) == 12
        if send == "aiortc":
            assert not any(isinstance(o, DirectOutput) for o in outputs)
        else:
            # The native path whenever the extension is built (CI builds it).
            native = send in ("native", "per-consumer") and native_send.AVAILABLE
            assert all(isinstance(o, DirectOutput) and o.rtp.native == native for o in outputs)
            # Steady consumers go through their producer's C fan-out, and only there.
            fanout = send == "native" and native_send.AVAILABLE
            for consumer in consumers:
                assert (consumer in consumer.producer._native) == fanout
                assert (consumer in consumer.producer._fanout) != fanout
    finally:
        await room.close()


async def _three_participants(room: Room) -> None:
    for name in NAMES:
        await room.join(name, role="teacher" if name == "teacher" else "student")

    def everyone_decodes() -> bool:
        for receiver in NAMES:
            for publisher in NAMES:
                if receiver == publisher:
                    continue
                video = room.sink(receiver, publisher, "video")
                audio = room.sink(receiver, publisher, "audio")
                if video is None or audio is None or video.decoded < 20 or audio.decoded < 20:
                    return False
        return True

    await wait_for(everyone_decodes, timeout=10, what="every stream to decode")
    for receiver in NAMES:
        client = room.clients[receiver]
        assert client.active_participants() == set(NAMES) - {receiver}
        for publisher in set(NAMES) - {receiver}:
            video = room.sink(receiver, publisher, "video")
            audio = room.sink(receiver, publisher, "audio")
            assert video is not None and audio is not None
            assert video.sizes == {(640, 360)}
            assert video.decode_errors == 0 and audio.decode_errors == 0
            assert video.order_violations(CLIP_FRAMES) == 0, video.indices
            # The server forwards from a keyframe; only a keyframe the loaded loopback
            # lost on its way (seen by the receiver) may leave frames before one.
            assert video.frames_before_keyframe == 0 or video.frames_lost_in_transit > 0, (
                receiver,
                publisher,
                video.frames_before_keyframe,
                video.packets,
                video.keyframes,
            )
            assert audio.samples_decoded > 0
    assert not room.answer_errors
    assert len(room.router.producers) == 6
    assert {p.participant_id for p in room.router.producers.values()} == set(NAMES)


async def test_nothing_is_decoded_on_the_forwarding_path(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoder_threads: list[str] = []
    real_get_decoder: Callable[..., Any] = get_decoder

    def counting_get_decoder(codec: Any) -> Any:
        decoder_threads.append(threading.current_thread().name)
        return real_get_decoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_get_decoder)
    await room.join("teacher")
    await room.join("student", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 30,
        what="30 forwarded frames",
    )

    publish_pc = room.participants["teacher"].publish_pc
    assert publish_pc is not None
    receivers = [t.receiver for t in publish_pc.getTransceivers()]
    assert len(receivers) == 2
    for receiver in receivers:
        assert aiortc_adapter.is_intercepted(receiver)
        stub = aiortc_adapter.decoder_queue(receiver)
        assert isinstance(stub, DecoderQueueStub)
        assert stub.frames_put == 0  # aiortc never handed a frame over for decoding
        thread = aiortc_adapter.decoder_thread(receiver)
        assert thread is not None and not thread.is_alive()  # it exited at once
    assert decoder_threads == []  # no aiortc decoder was ever created in this process
    producer = next(p for p in room.router.producers.values() if p.kind == "video")
    assert producer.frames >= 30


async def test_the_direct_path_works_without_udp_segmentation_offload(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Route, "gso_supported", False)
    await room.join("teacher", audio=False)
    await room.join("student", video=False, audio=False)
    await wait_for(
        lambda: (s := room.sink("student", "teacher", "video")) is not None and s.decoded >= 20,
        what="20 decoded frames sent one datagram at a time",
    )
    sink = room.sink("student", "teacher", "video")
    assert sink is not None and sink.decode_errors == 0 and sink.order_violations(CLIP_FRAMES) == 0

"""An in-process room for media tests and benchmarks: a real `Router` and real aiortc
clients on loopback.

Signalling is a direct function call: the router listener hands each subscribe offer to
the client, whose answer goes straight back to the participant. Everyone consumes
everyone (`scripts.support.forwarding`), as in a classroom.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from aiortc import MediaStreamTrack, RTCPeerConnection

from scripts.support.forwarding import consume_existing, consume_new, stream_labels
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import ToneAudioTrack, vp8_clip
from scripts.synthpeer.sink import DecodeMode, StreamSink
from sfu import (
    MediaConfig,
    Participant,
    ParticipantId,
    Producer,
    Router,
    RouterId,
    RouterListener,
    RouterStats,
)
from sfu.ids import AppData, DisconnectReason, StreamLabel

CLIP_FRAMES = 150
LOOPBACK = MediaConfig(host_addresses=("127.0.0.1",), stats_interval=None)
# The ways a consumer sends, for tests that run on each: the C fan-out, one C call per
# consumer, Python, aiortc's sender.
SEND_CONFIGS = {
    "native": replace(LOOPBACK, send_path="direct"),
    "per-consumer": replace(LOOPBACK, send_path="direct", native_fanout=False),
    "python": replace(LOOPBACK, send_path="direct", native_send=False),
    "aiortc": replace(LOOPBACK, send_path="aiortc"),
}


@dataclass
class Events(RouterListener):
    """Records every router event; answers subscribe offers through the room's clients."""

    room: Room | None = None
    log: list[tuple[str, str]] = field(default_factory=list)
    audio_levels: list[tuple[str, int, bool]] = field(default_factory=list)
    keyframe_requests: int = 0
    disconnected: list[tuple[str, DisconnectReason]] = field(default_factory=list)
    stats: list[RouterStats] = field(default_factory=list)
    offers: dict[str, tuple[str, dict[str, dict[str, str]]]] = field(default_factory=dict)

    def on_participant_connected(self, participant: Participant) -> None:
        self.log.append(("connected", participant.id))

    def on_participant_disconnected(
        self, participant: Participant, reason: DisconnectReason
    ) -> None:
        self.log.append(("disconnected", participant.id))
        self.disconnected.append((participant.id, reason))

    def on_producer_added(self, producer: Producer) -> None:
        self.log.append(("producer_added", producer.participant_id))
        if self.room is not None and self.room.auto_consume:
            consume_new(self.room.router, producer)

    def on_producer_removed(self, producer: Producer) -> None:
        self.log.append(("producer_removed", producer.participant_id))

    def on_subscribe_offer(
        self, participant: Participant, offer_sdp: str, streams: dict[str, StreamLabel]
    ) -> None:
        self.log.append(("offer", participant.id))
        labels = stream_labels(streams)
        self.offers[participant.id] = (offer_sdp, labels)
        if self.room is not None and self.room.answer_offers:
            self.room.answer_later(participant, offer_sdp, labels)

    def on_keyframe_requested(self, producer: Producer) -> None:
        self.keyframe_requests += 1

    def on_audio_level(self, producer: Producer, level_dbov: int, voice: bool) -> None:
        self.audio_levels.append((producer.participant_id, level_dbov, voice))

    def on_stats(self, router: Router, stats: RouterStats) -> None:
        self.stats.append(stats)


class Room:
    """A router plus one `MediaClient` per participant.

    With `auto_consume` (the default) everyone consumes everyone, as in a classroom;
    without, only what the test passes to `router.consume`.
    """

    def __init__(self, config: MediaConfig = LOOPBACK, *, auto_consume: bool = True) -> None:
        self.config = config
        self.auto_consume = auto_consume
        self.events = Events(room=self)
        self.router = Router(RouterId("room"), config, self.events)
        self.clients: dict[str, MediaClient] = {}
        self.participants: dict[str, Participant] = {}
        self.answer_errors: list[BaseException] = []
        self.answer_offers = True
        """Whether the clients answer subscribe offers (off: the test answers itself)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self.clip = vp8_clip(CLIP_FRAMES)

    async def join(
        self,
        name: str,
        *,
        video: bool = True,
        audio: bool = True,
        decode: DecodeMode = "all",
        role: str = "student",
        audio_mode: str = "packets",
        audio_level: float = -20.0,
        loss_every: int | None = None,
        video_track: MediaStreamTrack | None = None,
        video_codec: str | None = None,
    ) -> MediaClient:
        participant = self.add_participant(name, {"role": role})
        track = ToneAudioTrack(
            level_dbov=audio_level, mode="frames" if audio_mode == "frames" else "packets"
        )
        client = MediaClient(
            self.config,
            video=self.clip if video and video_track is None else None,
            video_track=video_track,
            video_codec=video_codec,
            audio=track if audio else None,
            decode=decode,
            loss_every=loss_every,
        )
        self.clients[name] = client
        if video or audio or video_track is not None:
            answer = await participant.publish(await client.publish_offer())
            await client.publish_answer(answer)
        return client

    def add_participant(self, name: str, app_data: AppData | None = None) -> Participant:
        """A participant of the router, with no client yet (the caller may register one
        in `clients`, which then answers its subscribe offers). With `auto_consume` it
        consumes every producer of the others (and, through the listener, every later
        one)."""
        participant = self.router.add_participant(ParticipantId(name), app_data or {})
        self.participants[name] = participant
        if self.auto_consume:
            consume_existing(self.router, participant)
        return participant

    def answer_later(
        self, participant: Participant, offer_sdp: str, streams: dict[str, dict[str, str]]
    ) -> None:
        async def answer() -> None:
            client = self.clients.get(participant.id)
            if client is None or participant.closed:
                return
            try:
                sdp = await client.subscribe_offer(offer_sdp, streams)
                await participant.subscribe_answer(sdp)
            except Exception as exc:  # surfaced by the tests through answer_errors
                self.answer_errors.append(exc)

        task = asyncio.get_running_loop().create_task(answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def leave(self, name: str) -> None:
        await self.participants.pop(name).close()
        await self.clients.pop(name).close()

    async def close(self) -> None:
        await self.router.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients.values():
            await client.close()
        self.clients.clear()

    async def teacher_and_viewer(
        self, frames: int = 10
    ) -> tuple[RTCPeerConnection, RTCPeerConnection]:
        """A publishing "teacher" and a "student" who only watches, once the student has
        decoded `frames` of the teacher's video; returns the student's subscribe
        connection at the server and at the client."""
        await self.join("teacher")
        await self.join("student", video=False, audio=False)
        await wait_for(lambda: self.decoded("student", "teacher") >= frames, timeout=10)
        server_pc = self.participants["student"].subscribe_pc
        client_pc = self.clients["student"].subscribe_pc
        assert server_pc is not None and client_pc is not None
        return server_pc, client_pc

    def decoded(self, receiver: str, publisher: str) -> int:
        """Video frames `receiver` decoded from `publisher`'s current stream."""
        sink = self.sink(receiver, publisher, "video")
        return 0 if sink is None else sink.decoded

    def sink(self, receiver: str, publisher: str, kind: str) -> StreamSink | None:
        """The current sink of `receiver` for `publisher`'s `kind` track."""
        client = self.clients[receiver]
        for stream in client.streams_of(publisher):
            if not stream.ended and kind in stream.sinks:
                return stream.sinks[kind]
        return None


async def crowded_subscribe_offer(
    room: Room, publishers: int
) -> tuple[Participant, str, dict[str, dict[str, str]], list[MediaClient]]:
    """A subscriber's first offer in a room of `publishers` audio+video publishers.

    The publishers' answers are not applied, so no media flows: for signalling-size
    tests. Returns the subscriber, its offer, the offer's streams and the publishing
    clients (the caller closes them).
    """
    clients: list[MediaClient] = []
    clip = vp8_clip(3)
    for i in range(publishers):
        client = MediaClient(room.config, video=clip, audio=ToneAudioTrack())
        clients.append(client)
        participant = room.add_participant(f"p{i}")
        await participant.publish(await client.publish_offer())
    subscriber = room.add_participant("crowd-viewer")
    await wait_for(lambda: subscriber.id in room.events.offers, what="a subscribe offer")
    offer, streams = room.events.offers[subscriber.id]
    return subscriber, offer, streams, clients


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> float:
    """Poll `predicate` every 20 ms; return the time it took or fail after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start

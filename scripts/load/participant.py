"""One synthetic participant of a load test: join, publish, count what arrives, churn."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from api.overload import OVERLOADED
from scripts.load.counting import CountingClient, StreamCounter
from scripts.load.options import LoadOptions
from scripts.load.population import ClassPlan
from scripts.synthpeer.api_client import Account, ApiFailure, ClassroomApi
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.media import EncodedClip, LatencyProbe, SendLog, ToneAudioTrack
from scripts.synthpeer.peer import MediaFailed, SyntheticPeer
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig

JOIN_ERRORS = (
    ApiFailure,
    MediaFailed,
    TimeoutError,
    ConnectionError,
    OSError,
    aiohttp.ClientError,
)
IGNORED_EVENTS = (
    "PEER_JOINED",
    "PEER_LEFT",
    "MEDIA_STATE",
    "ACTIVE_SPEAKER",
    "ROSTER",
    "LAYERS",
    "SCREEN_SHARE",
    # The classroom tools (scripts.load.activity counts them with observers).
    "CHAT",
    "CHAT_DELETED",
    "HAND",
    "POLL_STARTED",
    "POLL_VOTED",
    "POLL_COUNTS",
    "POLL_RESULT",
    "MODERATION",
)
"""Room events a synthetic participant does not keep (its observers still see them)."""


def _ignore(data: dict[str, Any]) -> None:
    pass


@dataclass
class JoinRecord:
    """One ``JOIN_ROOM`` attempt (first join or a churn rejoin); times are monotonic."""

    user: str
    role: str
    class_index: int
    publishes: bool
    kind: str
    started_at: float
    room_joined_at: float | None = None
    ready_at: float | None = None
    """``ROOM_JOINED`` received and, for publishers, the publish answer applied."""
    error: str | None = None
    shed: int = 0
    """``JOIN_ROOM`` refusals of an overloaded server ("try again shortly") before it
    succeeded or gave up: retried, as the error asks."""


SHED_RETRIES = 5
SHED_BACKOFF_SECONDS = 1.0


@dataclass
class LoadRegistry:
    """Everything the participants of a run produce, in one place for the monitor."""

    send_logs: dict[str, SendLog] = field(default_factory=dict)
    counters: list[StreamCounter] = field(default_factory=list)
    clients: list[CountingClient] = field(default_factory=list)
    probes: list[LatencyProbe] = field(default_factory=list)
    joins: list[JoinRecord] = field(default_factory=list)
    peer_errors: list[dict[str, str]] = field(default_factory=list)
    requested: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    """subscriber -> the ``SUBSCRIPTION`` entries it stands at (users it asked nothing
    about get the defaults), taken at the end of the window."""
    layers: dict[str, dict[str, int]] = field(default_factory=dict)
    muted: set[str] = field(default_factory=set)
    """Publishers whose microphone is muted (``MEDIA_STATE audio:false``)."""
    """subscriber -> ``{"events": n, "bandwidth": users reduced for bandwidth}``."""

    def attach_probes(self) -> None:
        for client in self.clients:
            self.probes += client.attach_probes(self.send_logs)

    def video_sinks(self) -> list[StreamSink]:
        return [sink for client in self.clients for sink in client.video_sinks()]


class LoadPeer:
    """A teacher or student of one synthetic class, driving a `SyntheticPeer`."""

    def __init__(
        self,
        api: ClassroomApi,
        account: Account,
        plan: ClassPlan,
        *,
        publishes: bool,
        options: LoadOptions,
        clip: EncodedClip | None,
        registry: LoadRegistry,
        low_clip: EncodedClip | None = None,
        screen_clip: EncodedClip | None = None,
        microphone_on: bool = True,
    ) -> None:
        """`low_clip`: publish the camera in two layers; `screen_clip`: share a screen once
        joined; `microphone_on=False`: mute after joining (``MEDIA_STATE``)."""
        self.account = account
        self.plan = plan
        self.publishes = publishes
        self._options = options
        self._clip = clip
        self._low_clip = low_clip
        self._screen_clip = screen_clip
        self._microphone_on = microphone_on
        self._registry = registry
        self.joined = False
        self.peer = SyntheticPeer(
            api,
            account,
            self._make_media,
            class_id=plan.class_id,
            host_addresses=options.ice_addresses,
            relay_only=options.relay_only,
            turn_transports=options.turn_transports,
            tiles=options.tiles if options.subscribe == "page" else None,
        )

    @property
    def user_id(self) -> str:
        return self.account.id

    def _make_media(self, config: MediaConfig) -> MediaClient:
        options = self._options
        send_video = self.publishes and options.video and self._clip is not None
        send_log = SendLog() if send_video else None
        if send_log is not None:
            self._registry.send_logs[self.user_id] = send_log
        client = CountingClient(
            config,
            subscriber=self.user_id,
            full_streams=options.full_streams,
            full_first=self.plan.teacher.id,
            on_counter=self._registry.counters.append,
            video=self._clip if send_video else None,
            low_video=self._low_clip if send_video else None,
            dtx=options.subscribe == "page",
            audio=ToneAudioTrack(mode="packets") if self.publishes and options.audio else None,
            sink_factory=lambda kind, codec: StreamSink(
                kind, codec, decode="sample", sample_frames=options.decode_sample
            ),
            send_log=send_log,
            paced=True,
        )
        self._registry.clients.append(client)
        return client

    async def join(self, kind: str = "join") -> JoinRecord:
        record = JoinRecord(
            self.user_id,
            self.account.role,
            self.plan.index,
            self.publishes,
            kind,
            time.monotonic(),
        )
        self._registry.joins.append(record)
        try:
            socket = await self.peer.connect()
            for event in IGNORED_EVENTS:
                socket.handlers[event] = _ignore
            await self._join_retrying_when_shed(record)
            if self.publishes and not self._microphone_on:
                self._registry.muted.add(self.user_id)
                await self.peer.set_microphone(False, keep_sending=self._options.muted_keep_sending)
            if self.publishes and self._screen_clip is not None:
                await self.peer.share_screen(self._screen_clip, timeout=self._options.join_timeout)
        except JOIN_ERRORS as error:
            record.error = (
                f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            )
            await self.close()
            return record
        record.started_at = self.peer.join_started
        record.room_joined_at = self.peer.joined_at
        record.ready_at = time.monotonic()
        self.joined = True
        return record

    async def _join_retrying_when_shed(self, record: JoinRecord) -> None:
        for attempt in range(SHED_RETRIES + 1):
            try:
                await self.peer.join(publish=self.publishes, timeout=self._options.join_timeout)
                return
            except ApiFailure as error:
                if error.error != OVERLOADED or attempt == SHED_RETRIES:
                    raise
                record.shed += 1
                await asyncio.sleep(SHED_BACKOFF_SECONDS * (attempt + 1))

    async def churn(self, pause: float) -> JoinRecord:
        """Leave the room (socket stays open), wait, join again."""
        self._retire_media()
        await self.peer.leave()
        self.joined = False
        await asyncio.sleep(pause)
        return await self.join("rejoin")

    def _retire_media(self) -> None:
        if isinstance(self.peer.media, CountingClient):
            self.peer.media.close_counters()

    def asked_off(self, publisher: str, source: str) -> bool:
        """Whether this subscriber asked for nothing of `publisher`'s `source`."""
        policy = self.peer.subscription
        return policy is not None and policy.wanted().get(publisher, {}).get(source) == "off"

    def collect_subscription(self) -> None:
        """What this subscriber asked for and was told (``LAYERS``), for the summary."""
        if self.peer.subscription is not None:
            self._registry.requested[self.user_id] = self.peer.subscription.wanted()
        self._registry.layers[self.user_id] = {
            "events": len(self.peer.layers.events),
            "bandwidth": len(self.peer.layers.reduced()),
        }

    def collect_errors(self) -> None:
        """Errors the server sent this peer after joining (e.g. media failure), each with
        the event it answered (empty when it answered none)."""
        for message in self.peer.errors:
            self._registry.peer_errors.append({"user": self.user_id, "error": message})
        socket = self.peer.socket
        if socket is not None:
            for frame in socket.received:
                if frame.get("event") == "ERROR":
                    data = frame.get("data") or {}
                    self._registry.peer_errors.append(
                        {
                            "user": self.user_id,
                            "error": str(data.get("message", "")),
                            "event": str(data.get("event") or ""),
                        }
                    )

    async def close(self) -> None:
        self._retire_media()
        try:
            await asyncio.wait_for(self.peer.close(), 10)
        except (TimeoutError, *JOIN_ERRORS):
            pass

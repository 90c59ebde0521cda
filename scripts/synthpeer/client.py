"""The media half of a synthetic participant: its publish and subscribe connections.

`MediaClient` speaks offers and answers as strings; whoever drives it (an in-process
test, the benchmark's tiny JSON protocol, or the WebSocket client of docs/protocol.md)
carries them. It publishes pre-encoded media and receives into counting sinks, so a
process can host many of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from scripts.synthpeer.media import EncodedClip, EncodedVideoTrack, SendLog, ToneAudioTrack
from scripts.synthpeer.sink import DecodeMode, StreamSink
from sfu import MediaConfig, create_peer_connection, set_local_description
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.assembler import Packet
from sfu.sdp import media_sections

logger = logging.getLogger(__name__)

SinkFactory = Callable[[str, str], StreamSink]
"""`(kind, codec) -> StreamSink` for each stream a client starts receiving."""


@dataclass
class ReceivedStream:
    """One stream of another participant, as labelled by the subscribe offers."""

    participant_id: str
    stream_id: str
    source: str = ""
    """What the publisher publishes in it: ``microphone``, ``camera`` or ``screen``."""
    sinks: dict[str, StreamSink] = field(default_factory=dict)
    """kind -> sink of the track currently received."""
    finished: list[StreamSink] = field(default_factory=list)
    """Sinks of tracks that ended (m-section turned inactive or reused)."""
    ended: bool = False


class _ReceiverTap:
    """Routes an intercepted receiver's packets to the sink of its current stream."""

    def __init__(self) -> None:
        self.sink: StreamSink | None = None

    def on_packet(self, packet: Packet, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.push(packet, data)


class MediaClient:
    """A synthetic participant's two aiortc peer connections.

    Publishing: `publish_offer()` -> signalling -> `publish_answer(sdp)`.
    Receiving: `subscribe_offer(sdp, streams)` returns the answer to send back.
    `streams` (from the server) maps msid stream ids to participant ids; received
    media is counted per participant in `received`.
    """

    def __init__(
        self,
        config: MediaConfig,
        *,
        video: EncodedClip | None = None,
        audio: ToneAudioTrack | None = None,
        decode: DecodeMode = "sample",
        sink_factory: SinkFactory | None = None,
        send_log: SendLog | None = None,
        video_track: MediaStreamTrack | None = None,
        video_codec: str | None = None,
        loss_every: int | None = None,
        relay_only: bool = False,
    ) -> None:
        """`relay_only` forces ``ice_transport_policy="relay"`` on both connections (all
        media through the TURN server of `config`)."""
        self.config = replace(config, ice_transport_policy="relay") if relay_only else config
        self.video_track: MediaStreamTrack | None = (
            EncodedVideoTrack(video, send_log=send_log) if video is not None else video_track
        )
        self.audio_track = audio
        self._video_codec = video_codec
        self._loss_every = loss_every
        self.dropped = 0
        self._rtp_seen = {"out": 0, "in": 0}
        self._decode: DecodeMode = decode
        self._sink_factory = sink_factory
        self.publish_pc: RTCPeerConnection | None = None
        self.subscribe_pc: RTCPeerConnection | None = None
        self.received: dict[str, ReceivedStream] = {}
        """stream id -> what was received from that participant."""
        self._taps: dict[str, _ReceiverTap] = {}
        self._mid_stream: dict[str, str | None] = {}
        self._labels: dict[str, tuple[str, str]] = {}
        """msid stream id -> (publisher, source)."""
        self.subscribe_offers = 0

    # ----------------------------------------------------------------- publish

    async def publish_offer(self) -> str:
        """Create the publish connection (sendonly tracks) and return its offer."""
        if self.publish_pc is None:
            pc = self.publish_pc = create_peer_connection(self.config)
            tracks: list[MediaStreamTrack] = []
            if self.audio_track is not None:
                tracks.append(self.audio_track)
            if self.video_track is not None:
                tracks.append(self.video_track)
            for track in tracks:
                transceiver = pc.addTransceiver(track, direction="sendonly")
                if isinstance(track, EncodedVideoTrack):
                    adapter_testing.on_keyframe_request(transceiver.sender, track.request_keyframe)
                if track.kind == "video" and self._video_codec is not None:
                    wanted = self._video_codec.lower()
                    capabilities = RTCRtpSender.getCapabilities("video").codecs
                    transceiver.setCodecPreferences(
                        [c for c in capabilities if c.name.lower() in (wanted, "rtx")]
                    )
            if self._loss_every is not None:
                adapter_testing.filter_datagrams(pc, drop_outgoing=self._drop_outgoing)
        offer = await self.publish_pc.createOffer()
        return await set_local_description(self.publish_pc, offer, self.config)

    def _drop_outgoing(self, datagram: bytes) -> bool:
        return self._drop("out", datagram)

    def _drop_incoming(self, datagram: bytes) -> bool:
        return self._drop("in", datagram)

    def _drop(self, direction: str, datagram: bytes) -> bool:
        """Deterministic loss: every `loss_every`-th RTP packet each way (RTCP, DTLS and
        STUN pass)."""
        if self._loss_every is None or not adapter_testing.is_rtp(datagram):
            return False
        self._rtp_seen[direction] += 1
        if self._rtp_seen[direction] % self._loss_every == 0:
            self.dropped += 1
            return True
        return False

    def set_video_direction(self, direction: str) -> None:
        """Change the publish video transceiver's direction (then renegotiate)."""
        assert self.publish_pc is not None
        for transceiver in self.publish_pc.getTransceivers():
            if transceiver.kind == "video":
                transceiver.direction = direction

    async def publish_answer(self, answer_sdp: str) -> None:
        assert self.publish_pc is not None
        await self.publish_pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer_sdp, type="answer")
        )

    # ----------------------------------------------------------------- subscribe

    async def subscribe_offer(
        self, offer_sdp: str, streams: Mapping[str, Mapping[str, str]]
    ) -> str:
        """Apply a server subscribe offer; return the answer. `streams` labels each msid
        stream id: ``{"userId", "source"}``."""
        self.subscribe_offers += 1
        for stream_id, label in streams.items():
            owner = label.get("userId") or "?"
            self._labels[stream_id] = (owner, label.get("source", ""))
        first = self.subscribe_pc is None
        if self.subscribe_pc is None:
            pc = self.subscribe_pc = create_peer_connection(self.config)
            pc.on("track", self._on_track)
        pc = self.subscribe_pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if first and self._loss_every is not None:
            adapter_testing.filter_datagrams(pc, drop_incoming=self._drop_incoming)
        for section in media_sections(offer_sdp):
            self._update_section(
                section.mid, section.kind, section.codec, section.direction, section.stream_id
            )
        answer = await pc.createAnswer()
        return await set_local_description(pc, answer, self.config)

    def _on_track(self, track: MediaStreamTrack) -> None:
        pc = self.subscribe_pc
        assert pc is not None
        transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
        assert transceiver.mid is not None
        tap = _ReceiverTap()
        adapter_testing.intercept_receiver(transceiver.receiver, tap.on_packet)
        self._taps[transceiver.mid] = tap

    def _update_section(
        self, mid: str, kind: str, codec: str | None, direction: str, stream_id: str | None
    ) -> None:
        tap = self._taps.get(mid)
        if tap is None:
            return
        active = direction in ("sendonly", "sendrecv") and stream_id is not None
        new = stream_id if active else None
        current = self._mid_stream.get(mid)
        if new == current and tap.sink is not None:
            return
        self._mid_stream[mid] = new
        previous = self.received.get(current) if current is not None else None
        if previous is not None and tap.sink is not None:
            if previous.sinks.get(kind) is tap.sink:
                del previous.sinks[kind]
            previous.finished.append(tap.sink)
            previous.ended = not previous.sinks
        tap.sink = None
        if new is None:
            return
        stream = self.received.get(new)
        if stream is None:
            owner, source = self._labels.get(new, ("?", ""))
            stream = ReceivedStream(participant_id=owner, stream_id=new, source=source)
            self.received[new] = stream
        stream.ended = False
        sink = self._new_sink(kind, codec or ("VP8" if kind == "video" else "opus"))
        stream.sinks[kind] = sink
        tap.sink = sink

    def _new_sink(self, kind: str, codec: str) -> StreamSink:
        if self._sink_factory is not None:
            return self._sink_factory(kind, codec)
        return StreamSink(kind, codec, decode=self._decode)

    # ----------------------------------------------------------------- queries, close

    def streams_of(self, participant_id: str) -> list[ReceivedStream]:
        """Streams received from one participant (usually one: audio+video sinks)."""
        return [s for s in self.received.values() if s.participant_id == participant_id]

    def active_participants(self) -> set[str]:
        """Participants whose media this client currently receives."""
        return {s.participant_id for s in self.received.values() if not s.ended}

    async def close(self) -> None:
        for track in (self.video_track, self.audio_track):
            if track is not None:
                track.stop()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()

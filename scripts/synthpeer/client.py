"""The media half of a synthetic participant: its publish and subscribe connections.

`MediaClient` speaks offers and answers as strings; whoever drives it (an in-process
test, the benchmark's tiny JSON protocol, or the WebSocket client of docs/protocol.md)
carries them. It publishes pre-encoded media and receives into counting sinks, so a
process can host many of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from scripts.synthpeer.media import EncodedClip, EncodedVideoTrack, SendLog, ToneAudioTrack
from scripts.synthpeer.pacing import PacedStream, Pacer, packetize_audio, packetize_video
from scripts.synthpeer.sink import DecodeMode, StreamSink
from sfu import MediaConfig, create_peer_connection, set_local_description
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.assembler import Packet
from sfu.sdp import media_sections

logger = logging.getLogger(__name__)

SinkFactory = Callable[[str, str], StreamSink]
"""`(kind, codec) -> StreamSink` for each stream a client starts receiving."""

StreamsMap = Mapping[str, Any]
"""A subscribe offer's ``streams``: msid stream id -> ``{userId, source}`` (or, from
servers before selective forwarding and the bare `sfu.Router`, the publisher's id)."""


@dataclass(frozen=True)
class StreamLabel:
    """Whose stream an msid stream id is, and which of their sources (`None`: a server
    that sends one stream per publisher, microphone and camera together)."""

    user_id: str
    source: str | None


def stream_labels(streams: StreamsMap) -> dict[str, StreamLabel]:
    """Read a ``streams`` map in either form."""
    labels = {}
    for stream_id, value in streams.items():
        if isinstance(value, Mapping):
            source = value.get("source")
            labels[stream_id] = StreamLabel(
                str(value.get("userId")), None if source is None else str(source)
            )
        else:
            labels[stream_id] = StreamLabel(str(value), None)
    return labels


def source_of(label: StreamLabel | None, kind: str) -> str:
    """The source a received track carries: as labelled, else by its kind."""
    if label is not None and label.source is not None:
        return label.source
    return "microphone" if kind == "audio" else "camera"


@dataclass(frozen=True)
class PublishedTrack:
    """One publish m-section and what it carries (the ``tracks`` map of the offer)."""

    transceiver: RTCRtpTransceiver
    source: str
    layer: str | None = None

    def describe(self) -> dict[str, str]:
        return {"source": self.source} | ({"layer": self.layer} if self.layer else {})


_OPUS_RTPMAP = re.compile(r"a=rtpmap:(\d+) opus/", re.IGNORECASE)


def with_opus_dtx(sdp: str) -> str:
    """`sdp` with ``usedtx=1`` on its Opus ``a=fmtp`` lines (one added where missing)."""
    lines = sdp.split("\r\n")
    opus = {m.group(1) for m in _OPUS_RTPMAP.finditer(sdp)}
    with_fmtp = {pt for pt in opus if any(line.startswith(f"a=fmtp:{pt} ") for line in lines)}
    out = []
    for line in lines:
        if any(line.startswith(f"a=fmtp:{pt} ") for pt in opus) and "usedtx=" not in line:
            line += ";usedtx=1"
        out.append(line)
        rtpmap = _OPUS_RTPMAP.match(line)
        if rtpmap is not None and rtpmap.group(1) not in with_fmtp:
            out.append(f"a=fmtp:{rtpmap.group(1)} usedtx=1")
    return "\r\n".join(out)


def _carries(labelled: str | None, wanted: str | None) -> bool:
    """A stream labelled `labelled` carries source `wanted` (`None`: any)."""
    if wanted is None or labelled == wanted:
        return True
    return labelled is None and wanted in ("camera", "microphone")


@dataclass
class ReceivedStream:
    """One stream of another participant, as labelled by the subscribe offers."""

    participant_id: str
    stream_id: str
    source: str | None = None
    """``microphone``, ``camera`` or ``screen`` (`None`: unlabelled, both kinds)."""
    sinks: dict[str, StreamSink] = field(default_factory=dict)
    """kind -> sink of the track currently received."""
    finished: list[StreamSink] = field(default_factory=list)
    """Sinks of tracks that ended (m-section turned inactive or reused)."""
    ended: bool = False


PLI_INTERVAL = 0.3
"""Seconds between keyframe requests of one receiver (about what a browser waits)."""


class ReceiverTap:
    """Routes an intercepted receiver's packets to the sink of its current stream, and
    asks the sender for a keyframe (PLI) when the sink lost a frame for good, as a
    browser does: what follows a lost frame cannot be decoded until a keyframe."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self.sink: StreamSink | None = None
        self.plis_sent = 0
        self.receiver = receiver
        self._receiver = receiver
        self._ssrc: int | None = None
        self._pli_at = -PLI_INTERVAL
        self._tasks: set[asyncio.Task[None]] = set()

    def on_packet(self, packet: Packet, data: bytes) -> None:
        self._ssrc = packet.ssrc
        sink = self.sink
        if sink is not None:
            sink.push(packet, data)

    # The native receive path's frames (`adapter_testing.receive_frames_natively`): the
    # tap is the `FrameTarget` of its receiver.
    def on_native_frame(
        self, payloads: tuple[bytes, ...], pts: int, keyframe: bool, temporal: int, sync: bool
    ) -> None:
        sink = self.sink
        if sink is not None:
            sink.push_frame(payloads, pts, keyframe)

    def on_native_loss(self) -> None:
        sink = self.sink
        if sink is not None:
            sink.lost_frame()

    def on_native_counts(self, counts: object) -> None:
        pass  # the sink counts what it gets

    def on_native_level(self, level: int, voice: bool) -> None:
        pass  # the server's audio levels; a subscriber does not use them

    def on_native_silence(self) -> None:
        pass

    def on_native_report(self, report: object, legs: object, *frame: object) -> None:
        pass  # only for frames handed to a C fan-out, which a subscriber has none of

    def on_native_tally(self, tally: object) -> None:
        pass  # likewise

    def on_loss(self) -> None:
        now = time.monotonic()
        if self._ssrc is None or now - self._pli_at < PLI_INTERVAL:
            return
        self._pli_at = now
        self.plis_sent += 1
        task = asyncio.get_running_loop().create_task(
            adapter_testing.send_pli(self._receiver, self._ssrc)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class MediaClient:
    """A synthetic participant's two aiortc peer connections.

    Publishing: `publish_offer()` -> signalling -> `publish_answer(sdp)`; `publish_tracks()`
    then says what each m-section carries (the offer's ``tracks`` map). A camera given a
    `low_video` clip is published twice, layer high (`video`) and layer low, from one
    picture clock; `add_screen()` adds a screen track (renegotiate after it).
    Receiving: `subscribe_offer(sdp, streams)` returns the answer to send back.
    `streams` (from the server) labels msid streams by user and source; received media
    is counted per stream in `received`.
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
        low_video: EncodedClip | None = None,
        screen: EncodedClip | None = None,
        dtx: bool = False,
        paced: bool = False,
    ) -> None:
        """`relay_only` forces ``ice_transport_policy="relay"`` on both connections (all
        media through the TURN server of `config`). `dtx` asks for Opus DTX in the publish
        offer, like the page. `paced`: clips (and Opus packet loops) are sent by the
        process's `Pacer` instead of aiortc's sender (`scripts.synthpeer.pacing`)."""
        self.config = replace(config, ice_transport_policy="relay") if relay_only else config
        # Both layers loop the same pts pattern (one seed), so the high layer's send log
        # dates the frames of either: the probe measures whichever the server forwards.
        seed = random.randrange(1 << 32)
        self.video_track: MediaStreamTrack | None = (
            EncodedVideoTrack(video, send_log=send_log, seed=seed)
            if video is not None
            else video_track
        )
        self.low_video_track = (
            EncodedVideoTrack(low_video, seed=seed) if low_video is not None else None
        )
        self.screen_track = EncodedVideoTrack(screen) if screen is not None else None
        self.audio_track = audio
        self._dtx = dtx
        self._paced = paced
        self.paced_streams: list[PacedStream] = []
        self.published: list[PublishedTrack] = []
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
        self._taps: dict[str, ReceiverTap] = {}
        self._mid_stream: dict[str, str | None] = {}
        self._labels: dict[str, StreamLabel] = {}
        self.subscribe_offers = 0
        self.sends_remb = True
        """False: REMBs of the subscribe connection are never sent (so none is estimated)."""

    # ----------------------------------------------------------------- publish

    async def publish_offer(self) -> str:
        """Create the publish connection (sendonly tracks) and return its offer."""
        if self.publish_pc is None:
            pc = self.publish_pc = create_peer_connection(self.config)
            if self.audio_track is not None:
                self._add_track(self.audio_track, "microphone")
            if self.video_track is not None:
                self._add_track(self.video_track, "camera", "high")
            if self.low_video_track is not None:
                self._add_track(self.low_video_track, "camera", "low")
            if self.screen_track is not None:
                self._add_track(self.screen_track, "screen")
            if self._loss_every is not None:
                adapter_testing.filter_datagrams(pc, drop_outgoing=self._drop_outgoing)
        offer = await self.publish_pc.createOffer()
        sdp = await set_local_description(self.publish_pc, offer, self.config)
        # aiortc sends what it sends whatever the fmtp says; the server reads the offer.
        return with_opus_dtx(sdp) if self._dtx else sdp

    def _add_track(self, track: MediaStreamTrack, source: str, layer: str | None = None) -> None:
        assert self.publish_pc is not None
        transceiver = self.publish_pc.addTransceiver(track, direction="sendonly")
        if isinstance(track, EncodedVideoTrack):
            adapter_testing.on_keyframe_request(transceiver.sender, track.request_keyframe)
        if self._paced:
            self._pace(transceiver.sender, track)
        if track.kind == "video" and self._video_codec is not None:
            wanted = self._video_codec.lower()
            capabilities = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences(
                [c for c in capabilities if c.name.lower() in (wanted, "rtx")]
            )
        self.published.append(PublishedTrack(transceiver, source, layer))

    def _pace(self, sender: RTCRtpSender, track: MediaStreamTrack) -> None:
        if isinstance(track, EncodedVideoTrack) and self._video_codec in (None, "vp8", "VP8"):
            clip = packetize_video(track.clip)
        elif isinstance(track, ToneAudioTrack) and track.mode == "packets":
            clip = packetize_audio(track)
        else:
            return
        stream = PacedStream(sender, track, clip)
        self.paced_streams.append(stream)
        Pacer.of(asyncio.get_running_loop()).add(stream)

    def publish_tracks(self) -> dict[str, dict[str, str]]:
        """The ``tracks`` map of the last publish offer: mid -> ``{source, layer?}``."""
        return {
            t.transceiver.mid: t.describe() for t in self.published if t.transceiver.mid is not None
        }

    def add_screen(self, clip: EncodedClip) -> None:
        """Share a screen from the next publish offer on (or again, after `stop_screen`)."""
        assert self.publish_pc is not None, "publish first"
        screen = next((t for t in self.published if t.source == "screen"), None)
        if screen is not None:
            screen.transceiver.direction = "sendonly"
            return
        self.screen_track = EncodedVideoTrack(clip)
        self._add_track(self.screen_track, "screen")

    def stop_screen(self) -> None:
        """Stop sharing from the next publish offer on (the m-section turns inactive)."""
        for track in self.published:
            if track.source == "screen":
                track.transceiver.direction = "inactive"

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
        """Change the camera's publish transceivers' direction (then renegotiate)."""
        assert self.publish_pc is not None
        for track in self.published:
            if track.source == "camera":
                track.transceiver.direction = direction

    def pause_audio(self) -> None:
        """Stop sending the microphone (the page does while muted) until `resume_audio`."""
        if isinstance(self.audio_track, ToneAudioTrack):
            self.audio_track.pause()

    def resume_audio(self) -> None:
        if isinstance(self.audio_track, ToneAudioTrack):
            self.audio_track.resume()

    async def publish_answer(self, answer_sdp: str) -> None:
        assert self.publish_pc is not None
        await self.publish_pc.setRemoteDescription(
            RTCSessionDescription(sdp=answer_sdp, type="answer")
        )

    # ----------------------------------------------------------------- subscribe

    async def subscribe_offer(self, offer_sdp: str, streams: StreamsMap) -> str:
        """Apply a server subscribe offer; return the answer."""
        self.subscribe_offers += 1
        self._labels.update(stream_labels(streams))
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
        tap = ReceiverTap(transceiver.receiver)
        adapter_testing.intercept_receiver(transceiver.receiver, tap.on_packet)
        if not self.sends_remb:
            adapter_testing.no_bandwidth_estimate(transceiver.receiver)
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
            label = self._labels.get(new)
            stream = ReceivedStream(
                participant_id=label.user_id if label else "?",
                stream_id=new,
                source=label.source if label else None,
            )
            self.received[new] = stream
        stream.ended = False
        sink = self._new_sink(kind, codec or ("VP8" if kind == "video" else "opus"))
        if kind == "video":
            sink.on_loss = tap.on_loss
        stream.sinks[kind] = sink
        tap.sink = sink

    def _new_sink(self, kind: str, codec: str) -> StreamSink:
        if self._sink_factory is not None:
            return self._sink_factory(kind, codec)
        return StreamSink(kind, codec, decode=self._decode)

    # ----------------------------------------------------------------- queries, close

    def streams_of(self, participant_id: str, source: str | None = None) -> list[ReceivedStream]:
        """Streams received from one participant (one per source; from servers that label
        no sources, one with audio and video sinks), of one `source` if given."""
        return [
            s
            for s in self.received.values()
            if s.participant_id == participant_id and _carries(s.source, source)
        ]

    def sink_of(self, participant_id: str, source: str) -> StreamSink | None:
        """The current sink of one participant's `source` (``camera``, ``screen``,
        ``microphone``), whichever way the server labels its streams."""
        kind = "audio" if source == "microphone" else "video"
        for stream in self.streams_of(participant_id, source):
            sink = stream.sinks.get(kind)
            if sink is not None:
                return sink
        return None

    def active_participants(self) -> set[str]:
        """Participants whose media this client currently receives."""
        return {s.participant_id for s in self.received.values() if not s.ended}

    async def close(self) -> None:
        pacer = Pacer.of(asyncio.get_running_loop())
        for stream in self.paced_streams:
            pacer.remove(stream)
            stream.close()
        for track in (self.video_track, self.low_video_track, self.screen_track, self.audio_track):
            if track is not None:
                track.stop()
        for pc in (self.publish_pc, self.subscribe_pc):
            if pc is not None:
                await pc.close()

"""The native receive path of a publish connection: once SRTP is keyed, its media
datagrams go to `sfu.native_receive` instead of aiortc's per-packet receiver.

aiortc keeps the handshake (ICE, DTLS), SDP and RTCP; the C receiver unprotects, parses,
keeps the receive statistics, unwraps RTX, decides NACKs and assembles frames, and the
socket of the nominated pair is drained in batches (recvmmsg) per wake-up. Python sees
one event per frame, not per packet. What aiortc's receiver did per packet and the rest
of the server relies on is done here from those events: NACKs upstream (through the
receiver's own `_send_rtcp_nack`, so `NackCounter` counts them), receiver reports (the
C statistics stand in for aiortc's `StreamStatistics`, which its RTCP task reads), and
REMB: aiortc's estimator no longer sees packets, so each publish connection announces
a fixed ceiling once a second (`remb_bitrate`); the publisher's own loss-based control,
fed by the receiver reports, works below it.

While a producer's consumers are all on its C fan-out (`Producer.handed_off`), its
tracks' `NativeCounts.forward_directly` lets the C receiver call the fan-out itself:
Python then sees only keyframes, what the fan-out reports (a route check, a send
error), and a tally of frames and audio levels every `TALLY_INTERVAL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci

import sfu.native_receive as native_receive
from sfu.aiortc_adapter.internals import (
    DTLS_HANDLE_RTP,
    DTLS_HEADER_EXTENSIONS,
    DTLS_RTP_ROUTER,
    DTLS_RX_SRTP,
    DTLS_SEND_RTP,
    EXTENSION_IDS,
    ICE_DATA_RECEIVED,
    LOOP_ADD_READER,
    RX_CODECS,
    RX_REMOTE_STREAMS,
    RX_RTCP_SSRC,
    RX_RTX_SSRC,
    RX_SEND_NACK,
    TRANSPORT_SOCK_FD,
)
from sfu.aiortc_adapter.receive_path import SrtpShortcut, run_to_completion
from sfu.aiortc_adapter.srtp import srtp_unprotect_pointers
from sfu.aiortc_adapter.ssrc_routing import SsrcRouting
from sfu.aiortc_adapter.transports import ice_connections, is_relayed, nominated_pair
from sfu.track_caps import NO_CAPS, TrackCaps

logger = logging.getLogger(__name__)

REMB_INTERVAL = 1.0
"""Seconds between the REMBs a natively received publish connection sends."""
TALLY_INTERVAL = 0.1
"""Seconds between takes of what the direct hand-offs did (frame counts, audio levels),
done when media arrives anyway: a timer of its own would wake an idle server."""
TALLY_FLUSH = 1.0
"""Seconds after which a timer takes them when no media came (the last frames)."""

_KINDS = {"opus": "AUDIO", "vp8": "VP8", "h264": "H264"}


class FrameTarget(Protocol):
    """Where a published track's frames go (the forwarder's side of a receiver)."""

    def on_native_frame(
        self, payloads: tuple[bytes, ...], pts: int, keyframe: bool, temporal: int, sync: bool
    ) -> None: ...

    def on_native_level(self, level: int, voice: bool) -> None: ...

    def on_native_silence(self) -> None: ...

    def on_native_loss(self) -> None: ...

    def on_native_counts(self, counts: NativeCounts) -> None: ...

    def on_native_report(
        self,
        report: list[tuple[int, int]],
        legs: tuple[Any, ...],
        payloads: tuple[bytes, ...],
        pts: int,
        keyframe: bool,
        temporal: int,
        sync: bool,
    ) -> None:
        """A frame handed off directly (`NativeCounts.forward_directly`) whose fan-out
        reported `report` about `legs` (what `Fanout.send` handles)."""
        ...

    def on_native_tally(self, tally: native_receive.Tally) -> None:
        """What the direct hand-off did since the last tally."""
        ...


TargetOf = Callable[[RTCRtpReceiver], FrameTarget | None]
"""Gives the target of a receiver's frames (None: drop them)."""


class NativeStatistics:
    """Reads like aiortc's `StreamStatistics` (what its receiver's RTCP task and
    `getStats` read) from the C receiver's counts of one SSRC."""

    def __init__(self, receiver: native_receive.Receiver, ssrc: int) -> None:
        self._receiver = receiver
        self._ssrc = ssrc
        self._expected_prior = 0
        self._received_prior = 0

    def _read(self) -> tuple[int, int, int, int, int]:
        values = self._receiver.statistics(self._ssrc)
        return values if values is not None else (0, 0, 0, 0, 0)

    @property
    def packets_received(self) -> int:
        return self._read()[0]

    @property
    def max_seq(self) -> int:
        return self._read()[2]

    @property
    def jitter(self) -> int:
        return self._read()[4]

    @property
    def packets_expected(self) -> int:
        received, base, highest, cycles, _ = self._read()
        return cycles + highest - base + 1 if received else 0

    @property
    def packets_lost(self) -> int:
        lost = self.packets_expected - self.packets_received
        return max(-0x800000, min(lost, 0x7FFFFF))  # a 24-bit signed field

    @property
    def fraction_lost(self) -> int:
        expected = self.packets_expected
        received = self.packets_received
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval


DirectConfig = tuple[Callable[..., Any], tuple[Any, ...], bool]
"""(fanout, legs, gso): what `native_receive.Receiver.direct` takes."""


class NativeCounts:
    """The packet counters of one receiver's media SSRCs in the C receiver, and the
    switch of their direct hand-off to the C fan-out."""

    __slots__ = ("_direct", "_receiver", "ssrcs", "target")

    def __init__(self, receiver: native_receive.Receiver) -> None:
        self._receiver = receiver
        self.ssrcs: list[int] = []
        self.target: FrameTarget | None = None
        self._direct: DirectConfig | None = None

    @property
    def direct(self) -> DirectConfig | None:
        """The direct hand-off in force (None: every frame comes to Python)."""
        return self._direct

    def forward_directly(
        self, fanout: Callable[..., Any] | None, legs: tuple[Any, ...] = (), gso: bool = False
    ) -> None:
        """From now on hand the track's audio frames and non-key video frames to
        ``fanout(legs, ...)`` in C (`native_receive.Receiver.direct`); `fanout` None:
        every frame comes to the target again. What was tallied so far is delivered."""
        config = None if fanout is None else (fanout, legs, gso)
        current = self._direct
        if config is current or (
            config is not None
            and current is not None
            and config[0] is current[0]
            and config[1] is current[1]
            and config[2] == current[2]
        ):
            return
        self._direct = config
        for ssrc in self.ssrcs:
            self.apply(ssrc)
        self.sync()

    def apply(self, ssrc: int) -> None:
        """Give `ssrc` (one of `ssrcs`) the hand-off in force."""
        config = self._direct
        with contextlib.suppress(ValueError):  # an SSRC renegotiated away
            if config is None:
                self._receiver.direct(ssrc, None)
            else:
                self._receiver.direct(ssrc, *config)

    def sync(self) -> None:
        """Deliver what the direct hand-off did since the last time to the target."""
        target = self.target
        for ssrc in self.ssrcs:
            values = self._receiver.take(ssrc)
            if values is not None and target is not None:
                target.on_native_tally(native_receive.Tally._make(values))

    def read(self) -> tuple[int, int, int]:
        """(packets, late packets, skipped frames) so far."""
        packets = late = skipped = 0
        for ssrc in self.ssrcs:
            counts = self._receiver.counts(ssrc)
            if counts is not None:
                packets += counts["packets"]
                late += counts["late_packets"]
                skipped += counts["skipped"]
        return packets, late, skipped

    def media_ssrc(self) -> int | None:
        """The newest media SSRC of the receiver (RTX ones are not counted here)."""
        return self.ssrcs[-1] if self.ssrcs else None


class _Track:
    """The token of one receiver's streams in the C receiver."""

    __slots__ = ("counts", "receiver", "target")

    def __init__(self, receiver: RTCRtpReceiver, target: FrameTarget, counts: NativeCounts) -> None:
        self.receiver = receiver
        self.target = target
        self.counts = counts


class NativePublishReceive:
    """A publish connection's media through the C receiver (one per DTLS transport).

    Created by `receive_natively`; `media(datagram)` is called by the synchronous
    receive path with each keyed SRTP datagram until the nominated pair's socket has
    been taken over, after which `drain` reads it in batches.
    """

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        target_of: TargetOf,
        max_wait: float,
        remb_bitrate: int | None,
        on_media: Callable[[], None],
        on_rtcp: Callable[[bytes], None],
        take_socket: bool = True,
        caps: TrackCaps = NO_CAPS,
    ) -> None:
        self._dtls = dtls
        self._caps = caps
        self._target_of = target_of
        self._max_wait = max_wait
        self._remb_bitrate = remb_bitrate
        self._on_media = on_media
        self._on_rtcp = on_rtcp
        self._receiver: native_receive.Receiver | None = None
        self._tracks: dict[int, _Track] = {}  # id(RTCRtpReceiver) -> token
        self._video_ssrcs: set[int] = set()
        self._routing = SsrcRouting()
        # -1: never take the socket over (someone else reads it and calls `media`)
        self._drained_fd: int | None = None if take_socket else -1
        self._other: Callable[[bytes, Any], None] | None = None
        self._remb: asyncio.TimerHandle | None = None
        self._tally: asyncio.TimerHandle | None = None
        self._next_tally = 0.0
        self._closed = False
        self.frames = 0
        """Frames handed to Python."""
        self.reports = 0
        """Frames handed off to the C fan-out that came to Python for what it left."""
        self.batches = 0
        """Drains of the socket that found something."""
        self.rembs_sent = 0

    @property
    def receiver(self) -> native_receive.Receiver | None:
        """The C receiver (None before the first media datagram)."""
        return self._receiver

    @property
    def remb_bitrate(self) -> int | None:
        """The REMB ceiling announced to the publisher (None: no REMB)."""
        return self._remb_bitrate

    @property
    def draining(self) -> bool:
        """True once the nominated pair's socket is read in batches (never for a
        relayed pair: its datagrams come through the TURN client)."""
        return self._drained_fd is not None and self._drained_fd >= 0

    def close(self) -> None:
        """Stop sending REMB; the socket goes back to aioice with the transport."""
        self._closed = True
        for timer in (self._remb, self._tally):
            if timer is not None:
                timer.cancel()
        self._remb = self._tally = None

    # ----------------------------------------------------------------- datagrams

    def media(self, datagram: bytes) -> None:
        """One keyed SRTP datagram that came through aioice."""
        receiver = self._receiver or self._start()
        if receiver is None:
            return
        self._dispatch(receiver.feed(datagram))
        self._tally_due()
        if self._drained_fd is None:
            self._take_over_socket()

    async def plain_rtp(self, data: bytes, arrival_time_ms: int | None = None) -> None:
        """An unprotected RTP packet from the DTLS transport's own task (it stands in
        for the transport's ``_handle_rtp_data``)."""
        receiver = self._receiver or self._start()
        if receiver is not None:
            self._dispatch(receiver.feed_plain(data))
            self._tally_due()

    def drain(self) -> None:
        """The nominated socket is readable: handle all it holds."""
        receiver = self._receiver
        fd = self._drained_fd
        if receiver is None or fd is None:
            return
        events = receiver.drain(fd)
        if events:
            self.batches += 1
            self._dispatch(events)
        else:
            self._on_media()  # frames may have gone straight to the fan-out
        self._tally_due()

    def _start(self) -> native_receive.Receiver | None:
        session = getattr(self._dtls, DTLS_RX_SRTP)
        if session is None or self._closed:
            return None
        unprotect, srtp = srtp_unprotect_pointers(session)
        ids = getattr(getattr(self._dtls, DTLS_HEADER_EXTENSIONS), EXTENSION_IDS)
        level_id = ids.audio_level if ids.audio_level is not None else -1
        self._receiver = native_receive.Receiver(
            unprotect, srtp, session, audio_level_id=level_id, max_wait=self._max_wait
        )
        caps = self._caps
        self._receiver.cap(
            caps.audio_bitrate, caps.audio_packet_rate, caps.video_bitrate, caps.video_packet_rate
        )
        loop = asyncio.get_running_loop()
        if self._remb_bitrate:
            self._remb = loop.call_later(REMB_INTERVAL, self._send_remb)
        self._tally = loop.call_later(TALLY_FLUSH, self._flush_tallies)
        return self._receiver

    def _take_over_socket(self) -> None:
        pair = nominated_pair(self._dtls)
        if pair is None:
            return
        protocol = pair.protocol
        transport = getattr(protocol, "transport", None)
        fd = getattr(transport, TRANSPORT_SOCK_FD, None)
        loop = asyncio.get_running_loop()
        if (
            transport is None
            or is_relayed(transport)
            or not isinstance(fd, int)
            or transport.is_closing()
            or not hasattr(loop, LOOP_ADD_READER)
        ):
            self._drained_fd = -1  # stays on aioice's path: relayed, or not a plain socket
            return
        self._other = protocol.datagram_received
        # Replaces the transport's own reader; closing the transport removes ours.
        getattr(loop, LOOP_ADD_READER)(fd, self.drain)
        self._drained_fd = fd

    # ----------------------------------------------------------------- events

    def _dispatch(self, events: list[tuple[Any, ...]]) -> None:
        media = False
        for event in events:
            kind = event[0]
            if kind == native_receive.FRAME:
                media = True
                self.frames += 1
                event[1].target.on_native_frame(*event[2:])
            elif kind == native_receive.REPORT:
                media = True
                self.reports += 1
                event[1].target.on_native_report(*event[2:])
            elif kind == native_receive.LEVEL:
                event[1].target.on_native_level(event[2], event[3])
            elif kind == native_receive.SILENCE:
                media = True
                event[1].target.on_native_silence()
            elif kind == native_receive.LOSS:
                event[1].target.on_native_loss()
            elif kind == native_receive.NACK:
                self._send_nack(event[1], event[2], event[3])
            elif kind == native_receive.OTHER:
                if self._other is not None:
                    self._other(event[1], event[2])
            elif kind == native_receive.RTCP:
                self._on_rtcp(event[1])
            elif kind == native_receive.UNKNOWN:
                self._route(event[1])
        if media:
            self._on_media()

    def _route(self, plain: bytes) -> None:
        """An SSRC the C receiver does not know yet: find the receiver whose m-section
        negotiated it (`SsrcRouting`), add it, and hand the packet over again;
        RTP that names a mid the answer did not accept, or that no m-section negotiated,
        is refused (dropped unread in C for a second, and counted)."""
        receiver = self._receiver
        assert receiver is not None
        try:
            packet = RtpPacket.parse(plain, getattr(self._dtls, DTLS_HEADER_EXTENSIONS))
        except ValueError:
            return
        routed = self._routing.receiver_of(getattr(self._dtls, DTLS_RTP_ROUTER), packet)
        if isinstance(routed, str):
            receiver.refuse(packet.ssrc, routed)
            return
        rtp_receiver, codec = routed
        codecs = getattr(rtp_receiver, RX_CODECS)
        track = self._track(rtp_receiver)
        if track is None:
            return
        receiver.remove(packet.ssrc)  # a renegotiated codec: start the stream afresh
        if is_rtx(codec):
            media_ssrc = getattr(rtp_receiver, RX_RTX_SSRC).get(packet.ssrc)
            apt = codec.parameters.get("apt")
            media_codec = codecs.get(apt) if isinstance(apt, int) else None
            if media_ssrc is None or media_codec is None:
                return
            if media_ssrc not in receiver.ssrcs and not self._add_media(
                receiver, track, media_ssrc, media_codec
            ):
                return
            receiver.add_rtx(packet.ssrc, media_ssrc, packet.payload_type)
        elif not self._add_media(receiver, track, packet.ssrc, codec):
            return
        getattr(rtp_receiver, RX_REMOTE_STREAMS)[packet.ssrc] = NativeStatistics(
            receiver, packet.ssrc
        )
        self._dispatch(receiver.feed_plain(plain))

    def _add_media(
        self, receiver: native_receive.Receiver, track: _Track, ssrc: int, codec: Any
    ) -> bool:
        kind = _KINDS.get(codec.name.lower())
        if kind is None:
            return False
        receiver.add_stream(
            ssrc, getattr(native_receive, kind), codec.payloadType, codec.clockRate, track
        )
        if kind != "AUDIO":
            self._video_ssrcs.add(ssrc)
        if ssrc not in track.counts.ssrcs:
            track.counts.ssrcs.append(ssrc)
        if track.counts.direct is not None:
            track.counts.apply(ssrc)  # a new SSRC of the track is handed off too
        return True

    def _track(self, rtp_receiver: RTCRtpReceiver) -> _Track | None:
        track = self._tracks.get(id(rtp_receiver))
        if track is None or track.receiver is not rtp_receiver:
            target = self._target_of(rtp_receiver)
            if target is None:
                return None
            assert self._receiver is not None
            counts = NativeCounts(self._receiver)
            counts.target = target
            track = self._tracks[id(rtp_receiver)] = _Track(rtp_receiver, target, counts)
            target.on_native_counts(counts)
        return track

    def _send_nack(self, track: _Track, media_ssrc: int, lost: list[int]) -> None:
        run_to_completion(getattr(track.receiver, RX_SEND_NACK)(media_ssrc, lost))

    def _tally_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_tally:
            self._take_tallies(now)

    def _flush_tallies(self) -> None:
        self._tally = None
        if self._closed:
            return
        self._tally = asyncio.get_running_loop().call_later(TALLY_FLUSH, self._flush_tallies)
        now = time.monotonic()
        if now >= self._next_tally:
            self._take_tallies(now)

    def _take_tallies(self, now: float) -> None:
        self._next_tally = now + TALLY_INTERVAL
        for track in self._tracks.values():
            if track.counts.direct is not None:
                track.counts.sync()

    def _send_remb(self) -> None:
        self._remb = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._remb = loop.call_later(REMB_INTERVAL, self._send_remb)
        receiver = self._receiver
        assert receiver is not None and self._remb_bitrate
        video = sorted(self._video_ssrcs & set(receiver.ssrcs))
        rtcp_ssrc = next(
            (
                getattr(t.receiver, RX_RTCP_SSRC)
                for t in self._tracks.values()
                if t.receiver.track is not None and t.receiver.track.kind == "video"
            ),
            None,
        )
        if rtcp_ssrc is None or not video:
            return
        packet = RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(self._remb_bitrate, video),
        )
        self.rembs_sent += 1
        run_to_completion(_send_quietly(getattr(self._dtls, DTLS_SEND_RTP), bytes(packet)))


async def _send_quietly(send: Callable[[bytes], Any], data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await send(data)


def receive_natively(
    pc: RTCPeerConnection,
    target_of: TargetOf,
    *,
    max_wait: float,
    remb_bitrate: int | None,
    take_socket: bool = True,
    caps: TrackCaps = NO_CAPS,
) -> list[NativePublishReceive]:
    """Route `pc`'s keyed SRTP media to the C receiver (see `NativePublishReceive`).
    Call after `receive_media_synchronously(pc)`; without the extension (`native_receive.
    AVAILABLE` False) nothing changes. Without `take_socket` the nominated socket is
    never read in batches by the receive path: whoever reads it hands media on through
    the synchronous receive path. `caps` limits what each track may send (packets
    beyond are dropped and counted in `native_receive.refused_totals`). Returns the
    receive paths added (none when already done)."""
    added: list[NativePublishReceive] = []
    if not native_receive.AVAILABLE:
        return added
    for dtls, connection in ice_connections(pc):
        shortcut = getattr(connection, ICE_DATA_RECEIVED)
        if not isinstance(shortcut, SrtpShortcut) or shortcut.native is not None:
            continue
        native = NativePublishReceive(
            dtls,
            target_of,
            max_wait,
            remb_bitrate,
            shortcut.on_media,
            shortcut.rtcp,
            take_socket=take_socket,
            caps=caps,
        )
        shortcut.native = native
        # What waited in aioice's queue (while SRTP was being keyed) reaches the DTLS
        # transport's task, which hands it to this method: it goes native too.
        setattr(dtls, DTLS_HANDLE_RTP, native.plain_rtp)
        added.append(native)
    return added


def native_receive_of(pc: RTCPeerConnection) -> list[NativePublishReceive]:
    """The native receive paths of `pc` (one per transport; none on the Python path)."""
    found = []
    for _dtls, connection in ice_connections(pc):
        shortcut = getattr(connection, ICE_DATA_RECEIVED)
        if isinstance(shortcut, SrtpShortcut) and isinstance(shortcut.native, NativePublishReceive):
            found.append(shortcut.native)
    return found

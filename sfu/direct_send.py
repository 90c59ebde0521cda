"""The direct send path: a forwarded frame goes from the producer straight to each
subscriber's socket, in one synchronous call per frame.

aiortc/aioice are reached only through `sfu.aiortc_adapter` (its DTLS/ICE accessors and
`take_over_sending`); the RTP numbering is `sfu.rtp_rewriter`'s, sender reports are
`sfu.sender_reports`'.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc import RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from sfu import aiortc_adapter, native_send
from sfu.payloads import RtpPayloads
from sfu.rtcp import ReportBlock, SenderReport, last_sr, ntp_timestamp
from sfu.rtp_rewriter import SEQUENCE_MASK
from sfu.sdp import ABS_SEND_TIME_URI
from sfu.sender_reports import SenderReports
from sfu.stats import NO_LINK, LinkQuality, SendCounts
from sfu.streams import new_stream

logger = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
"""First byte (version, extension bit), marker | payload type, sequence number,
timestamp, SSRC."""
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_GSO_SIZE = struct.Struct("H")
_RTX_OSN = struct.Struct("!H")
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
_UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
_GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 60000
# what sendmsg with UDP_SEGMENT fails with where the kernel or device cannot segment
_GSO_UNSUPPORTED = (errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP)
_GSO_ANCILLARY: dict[int, list[tuple[int, int, bytes]]] = {}
# Frames between checks that the transport is still up (a closed one is also caught by
# the sender's stop() and by send errors), and between updates of the (wall clock, RTP
# timestamp) pair sender reports extrapolate from.
ROUTE_CHECK_MASK = 31
_SR_UPDATE_MASK = 15
_RTT_ALPHA = 0.85  # aiortc's smoothing of round trip times


def mid_extension(extension_id: int, mid: str) -> bytes:
    """The RFC 8285 one-byte header extension block carrying the MID."""
    block, _ = header_extensions(extension_id, mid, None)
    return block


def header_extensions(
    mid_id: int | None, mid: str, abs_send_time_id: int | None
) -> tuple[bytes, int | None]:
    """The RFC 8285 one-byte header extension block carrying the MID and, with
    `abs_send_time_id`, a 3-byte abs-send-time (zero here: `stamp` writes it per frame);
    returns the block and the offset of the abs-send-time value in it."""
    elements = b""
    value = mid.encode()
    if mid_id is not None and 1 <= mid_id <= 14 and 1 <= len(value) <= 16:
        elements += bytes([(mid_id << 4) | (len(value) - 1)]) + value
    offset = None
    if abs_send_time_id is not None and 1 <= abs_send_time_id <= 14:
        offset = 4 + len(elements) + 1
        elements += bytes([(abs_send_time_id << 4) | 2]) + b"\x00\x00\x00"
    if not elements:
        return b"", None
    elements += b"\x00" * (-len(elements) % 4)
    return struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements, offset


def abs_send_time(now: float) -> bytes:
    """`now` (seconds) as abs-send-time: 6.18 fixed point, 24 bits (wraps every 64 s)."""
    return (int(now * 262144) & 0xFFFFFF).to_bytes(3, "big")


class Route:
    """Where a `DirectRtpSender`'s packets go once the transport is up.

    For a host or server-reflexive pair, packets are sent synchronously on a duplicate of
    the ICE socket's descriptor (same kernel socket; asyncio's transport would add a
    Python layer and buffering per packet), a whole frame in one ``sendmsg`` with UDP
    GSO where the kernel supports it. A relayed pair goes through aioice's TURN client.
    """

    gso_supported = sys.platform == "linux"

    def __init__(self, dtls: RTCDtlsTransport, pair: Any, native: bool = True) -> None:
        self.dtls = dtls
        self.address = pair.remote_addr
        self.transport = pair.protocol.transport
        session = aiortc_adapter.tx_srtp(dtls)
        assert session is not None  # keyed: the DTLS transport is connected
        self.session: pylibsrtp.Session = session
        self.protect = aiortc_adapter.lean_protect(session)
        self.sock: socket.socket | None = None
        self.relay: Callable[[bytes, Any], None] | None = None
        # (descriptor, packed address, srtp_protect, srtp_t) for `native_send.Stream`
        self.native: tuple[int, bytes, int, int] | None = None
        relayed = aiortc_adapter.is_relayed(self.transport)
        raw = None if relayed else self.transport.get_extra_info("socket")
        if raw is not None:
            self.sock = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
            self.sock.setblocking(False)
            if native and native_send.AVAILABLE:
                with contextlib.suppress(ValueError):  # not a numeric address: Python path
                    address = native_send.sockaddr(self.address[0], self.address[1])
                    pointers = aiortc_adapter.srtp_pointers(session)
                    self.native = (self.sock.fileno(), address, *pointers)
        else:
            self.relay = self.transport.sendto

    @property
    def usable(self) -> bool:
        return aiortc_adapter.dtls_connected(self.dtls) and not aiortc_adapter.is_closing(
            self.transport
        )

    def send(self, packets: list[bytes], uniform: bool = False) -> None:
        """Send `packets`; `uniform`: all but the last have the same size (UDP GSO can
        carry them in one call)."""
        sock = self.sock
        if sock is None:
            assert self.relay is not None
            for packet in packets:
                self.relay(packet, self.address)
            return
        address = self.address
        if uniform and Route.gso_supported:
            try:
                self._send_segmented(sock, packets)
                return
            except BlockingIOError:
                return  # socket buffer full: drop the frame, NACK recovers
            except OSError as exc:
                if exc.errno not in _GSO_UNSUPPORTED:
                    raise
                logger.info("UDP GSO unavailable (%s): one sendto per packet", exc)
                Route.gso_supported = False
        try:
            for packet in packets:
                sock.sendto(packet, address)
        except BlockingIOError:
            pass

    def _send_segmented(self, sock: socket.socket, packets: list[bytes]) -> None:
        """Equal-size datagrams (the last may be shorter) in as few syscalls as possible:
        one for a frame of up to 64 packets and 60 kB."""
        size = len(packets[0])
        ancillary = _GSO_ANCILLARY.get(size)
        if ancillary is None:
            ancillary = _GSO_ANCILLARY[size] = [(_SOL_UDP, _UDP_SEGMENT, _GSO_SIZE.pack(size))]
        per_call = max(1, min(_GSO_MAX_SEGMENTS, _GSO_MAX_BYTES // size))
        if len(packets) <= per_call:
            sock.sendmsg([b"".join(packets)], ancillary, 0, self.address)
            return
        for start in range(0, len(packets), per_call):
            chunk = packets[start : start + per_call]
            if len(chunk) == 1:
                sock.sendto(chunk[0], self.address)
            else:
                sock.sendmsg([b"".join(chunk)], ancillary, 0, self.address)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class DirectRtpSender:
    """Sends forwarded frames for one `RTCRtpSender` straight to its socket.

    The stock path costs one task wake-up per frame and about 15 us of Python per
    packet (RtpPacket objects, header-extension maps, four coroutine layers down to the
    socket). Here a frame's payloads, packetized once per producer, are sent by each
    consumer in one synchronous call: RTP headers, SRTP protect, one ``sendmsg``.

    aiortc's sender keeps the rest (`aiortc_adapter.take_over_sending`): its RTP task
    idles on a track that never yields, a NACK reaches `retransmit` (answering from the
    `RtpRewriter`'s history with RTX), PLI/FIR go to `on_keyframe_request`. The
    connection's `SenderReports` sends this stream's sender reports together with its
    other streams' (on one clock for the whole process) instead of a task per sender,
    whose RTCP task only sends the BYE when it stops, and reads the subscriber's receiver
    reports about it (`link_quality`); RTCP that mixes in anything else still goes to
    aiortc. Payload types, RTX and the MID extension come from the parameters aiortc
    passes to ``send()`` once the transport is up (`ready` turns true, `on_ready` is
    called); ``stop()`` closes the duplicated socket.

    Numbering, history and counters are `state` (`sfu.streams`: the C `Stream` where the
    extension is built and `native`), which the C fan-out (`sfu.fanout`) shares: with
    `fanout`, while the route is native (`fans_out`), a producer's frames reach this
    stream without `send_frame`; `on_path_change` is called whenever `fans_out` may have
    changed.
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        kind: str,
        on_ready: Callable[[], None],
        *,
        native: bool = True,
        fanout: bool = True,
    ) -> None:
        self._sender = sender
        self._native = native
        self._on_ready = on_ready
        state = self.state = new_stream(kind, native)
        self._stream: native_send.Stream | None = None
        """`state` when it is the C `Stream` (routes then also go to it)."""
        if native_send.AVAILABLE and isinstance(state, native_send.Stream):
            self._stream = state
        self._fanout = fanout and self._stream is not None
        self.on_path_change: Callable[[], None] | None = None
        self._pt: int | None = None
        self._rtx_pt: int | None = None
        self._first_byte = 0x80
        self._extension = b""
        self._template = bytearray()
        self._send_time_at: int | None = None
        """Offset of the abs-send-time value in `_template`, if it is negotiated."""
        self._route: Route | None = None
        self._closed = False
        self._clock_rate = 0
        self._cname = ""
        self._last_sr = 0
        self._last_sr_time = 0.0
        self._reports: SenderReports | None = None
        self._link = NO_LINK
        self.nacks_received = 0
        self.retransmissions = 0
        self._ssrc, self._rtx_ssrc = aiortc_adapter.take_over_sending(
            sender, on_send=self._bind, on_stop=self.close, retransmit=self.retransmit
        )

    @property
    def native(self) -> bool:
        """Frames currently go out through the C extension (`native_send`)."""
        return self._route is not None and self._route.native is not None

    @property
    def fans_out(self) -> bool:
        """A producer's C fan-out may send to this stream now: it is enabled, the
        parameters are bound and the route is native."""
        stream = self._stream
        return self._fanout and stream is not None and stream.routed and self.ready

    @property
    def fanout_stream(self) -> native_send.Stream | None:
        """The C `Stream` the fan-out sends on (None when it never can)."""
        return self._stream if self._fanout else None

    @property
    def packets_sent(self) -> int:
        return self.state.packets_sent

    @property
    def next_picture_id(self) -> int | None:
        """The VP8 picture id the next frame goes out with (`DirectOutput`)."""
        return self.state.next_picture_id

    @next_picture_id.setter
    def next_picture_id(self, value: int | None) -> None:
        self.state.next_picture_id = value

    @property
    def ready(self) -> bool:
        """The transport is up and the negotiated parameters are known."""
        return self._pt is not None and not self._closed

    @property
    def ssrc(self) -> int:
        return self._ssrc

    @property
    def reports(self) -> SenderReports | None:
        """Its connection's sender reports (and downlink estimate), once it sends."""
        return self._reports

    def counts(self) -> SendCounts:
        """Packets and payload bytes sent, NACKed sequence numbers, retransmissions."""
        state = self.state
        return SendCounts(
            state.packets_sent, state.octets, self.nacks_received, self.retransmissions
        )

    def close(self) -> None:
        """Stop sending and release the duplicated socket. Idempotent."""
        self._closed = True
        if self._reports is not None:
            self._reports.discard(self)
            self._reports = None
        self._set_route(None)

    def _set_route(self, route: Route | None) -> None:
        """Send on `route` from now on (None: none), closing the one before."""
        if self._route is not None:
            self._route.close()
        self._route = route
        stream = self._stream
        if stream is not None:
            native = None if route is None else route.native
            if native is None:
                stream.clear_route()
            else:
                stream.set_route(route, *native)
        if self.on_path_change is not None:
            self.on_path_change()

    def _bind(self, parameters: RTCRtpSendParameters) -> None:
        if self._pt is not None or self._closed or not parameters.codecs:
            return
        pt = parameters.codecs[0].payloadType
        for codec in parameters.codecs:
            if codec.name.lower() == "rtx" and codec.parameters.get("apt") == pt:
                self._rtx_pt = codec.payloadType
        ids = {extension.uri: extension.id for extension in parameters.headerExtensions}
        mid_id = ids.get(MID_URI) if parameters.muxId else None
        block, self._send_time_at = header_extensions(
            mid_id, parameters.muxId or "", ids.get(ABS_SEND_TIME_URI)
        )
        self._extension = block
        self._template = bytearray(block)
        self._first_byte = 0x90 if self._extension else 0x80
        self._clock_rate = parameters.codecs[0].clockRate
        self._cname = parameters.rtcp.cname or ""
        self._pt = pt
        if self._stream is not None and pt is not None:
            at = -1 if self._send_time_at is None else self._send_time_at
            self._stream.bind(self._ssrc, pt, self._first_byte, self._extension, at)
        self._reports = SenderReports.of(self._sender.transport)
        self._reports.add(self)
        self._on_ready()
        if self.on_path_change is not None:
            self.on_path_change()

    def detach(self, gap: int = 0) -> None:
        """The next frame starts a new source, `gap` clock ticks after the last one: keep
        RTP timestamps continuous (and take the next sender-report reference from it)."""
        self.state.switch_source(gap)
        self.state.frames = 0

    def _resolve(self) -> Route | None:
        if self._route is not None:
            self._set_route(None)
        if self._closed:
            return None
        dtls = self._sender.transport
        if not aiortc_adapter.dtls_connected(dtls):
            return None
        pair = aiortc_adapter.nominated_pair(dtls)
        if pair is None or aiortc_adapter.is_closing(pair.protocol.transport):
            return None
        route = Route(dtls, pair, native=self._native)
        self._set_route(route)
        return route

    def send_frame(
        self, payloads: RtpPayloads, pts: int, keyframe: bool = False, check_route: bool = False
    ) -> bool:
        """Send one frame's RTP packets; False when the transport is not up. Packets
        sent before a `keyframe` are not resent any more (`RtpRewriter.frame`).
        `check_route`: check the route on this frame (the C fan-out's route check).

        Runs once per frame per subscriber, so per-frame bookkeeping is kept light: the
        route is re-checked every 32 frames, the (wall clock, RTP timestamp) pair sender
        reports extrapolate from is taken on the first frame and every 16th after it,
        and the NACK history keeps one entry per frame, shared by its packets' slots.
        (Copying header and payload into the SRTP buffer separately measured slower
        than concatenating: two cffi calls cost more than one 1 kB copy.)
        """
        route = self._route
        state = self.state
        frames = state.frames = state.frames + 1
        if route is None or ((check_route or frames & ROUTE_CHECK_MASK == 0) and not route.usable):
            route = self._resolve()
        pt = self._pt
        if route is None or pt is None:
            return False
        items = payloads.items
        stream = self._stream
        if stream is not None and route.native is not None:
            # Numbering, history, stamping and counters in C (what the fan-out does).
            status = stream.send(items, pts, keyframe, payloads.uniform and Route.gso_supported)
            if status:
                self.send_failed(status)
            return True
        # Numbered (and in the NACK history) even if the send fails below: the receiver
        # sees a gap and NACKs it, and no sequence number is ever protected twice.
        seq, timestamp = state.frame(pts, items, keyframe)
        if self._send_time_at is not None:
            self._stamp()
        try:
            first_byte = self._first_byte
            ssrc = self._ssrc
            extension = self._extension
            protect = route.protect
            pack = RTP_HEADER.pack
            last = len(items) - 1
            packets: list[bytes] = []
            append = packets.append
            for i, payload in enumerate(items):
                marker = 0x80 if i == last else 0
                header = pack(first_byte, marker | pt, seq, timestamp, ssrc)
                append(protect(header + extension + payload))
                seq = (seq + 1) & SEQUENCE_MASK
            route.send(packets, payloads.uniform)
        except (pylibsrtp.Error, OSError, RuntimeError, ValueError) as exc:
            logger.debug("direct send failed: %s", exc)
            self._set_route(None)
        state.count_sent(len(items), payloads.size, timestamp)
        return True

    def send_failed(self, status: int) -> None:
        """What a C send of a frame came to, other than sent (`native_send.GSO_RETRIED`
        or an errno): without GSO from now on, or the route closed."""
        if status == native_send.GSO_RETRIED:
            if Route.gso_supported:
                logger.info("UDP GSO unavailable: one sendto per packet")
                Route.gso_supported = False
            return
        logger.debug("direct send failed: %s", os.strerror(status))
        self._set_route(None)

    def _stamp(self) -> None:
        """Write the current abs-send-time into the header extensions of what goes out
        next (every packet of a frame leaves in the same call)."""
        if self._stream is not None:
            self._extension = self._stream.stamp()
            return
        at = self._send_time_at
        assert at is not None
        template = self._template
        template[at : at + 3] = abs_send_time(time.perf_counter())
        self._extension = bytes(template)

    def sender_report(self, now: float) -> SenderReport | None:
        """This stream's sender report at Unix time `now` (None before its first frame).

        Also what aiortc's RTCP task would have recorded: the counts (its ``getStats()``)
        and the report's NTP middle bits and time, so that it still computes the round
        trip time from the subscriber's receiver reports.
        """
        state = self.state
        wall = state.sr_wall
        if wall is None or self._closed:
            return None
        ntp = ntp_timestamp(now)
        rtp_timestamp = state.sr_rtp + int((now - wall) * self._clock_rate)
        self._last_sr = last_sr(ntp)
        self._last_sr_time = now
        packets, octets = state.packets_sent, state.octets
        aiortc_adapter.record_sender_report(self._sender, self._last_sr, now, packets, octets)
        return SenderReport(self._ssrc, self._cname, ntp, rtp_timestamp, packets, octets)

    def on_receiver_report(self, block: ReportBlock, now: float) -> None:
        """Take in the subscriber's report about this stream (what aiortc's sender does
        with it: the round trip time from the SR it answers, smoothed the same way)."""
        rtt = self._link.round_trip_time
        if block.lsr and block.lsr == self._last_sr:
            sample = now - self._last_sr_time - block.dlsr / 65536
            rtt = sample if rtt is None else _RTT_ALPHA * rtt + (1 - _RTT_ALPHA) * sample
        jitter = block.jitter / self._clock_rate if self._clock_rate else None
        self._link = LinkQuality(rtt, block.fraction_lost, block.packets_lost, jitter)

    def link_quality(self) -> LinkQuality:
        """The latest receiver report's view of this stream."""
        return self._link

    def live_route(self) -> Route | None:
        """The route frames currently go out on, if the transport is still up."""
        route = self._route
        return route if route is not None and route.usable else None

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from our history, as RTX when negotiated."""
        self.nacks_received += 1
        route = self._route
        if route is None or self._pt is None:
            return
        resend = self.state.resend(sequence_number)
        if resend is None:
            return
        payload, _index, timestamp, marker = resend
        marker_bit = 0x80 if marker else 0
        if self._rtx_pt is not None:
            header = RTP_HEADER.pack(
                self._first_byte,
                marker_bit | self._rtx_pt,
                self.state.next_rtx_sequence_number(),
                timestamp,
                self._rtx_ssrc,
            )
            payload = _RTX_OSN.pack(sequence_number) + payload
        else:
            header = RTP_HEADER.pack(
                self._first_byte, marker_bit | self._pt, sequence_number, timestamp, self._ssrc
            )
        if self._send_time_at is not None:
            self._stamp()
        try:
            route.send([route.protect(header + self._extension + payload)])
            self.retransmissions += 1
        except (pylibsrtp.Error, OSError, RuntimeError, ValueError) as exc:
            logger.debug("retransmission failed: %s", exc)

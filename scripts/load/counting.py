"""Cheap receiving: count every stream from its RTP headers, fully receive only a few.

An SRTP packet's RTP header is in clear: SSRC, sequence number and marker bit give
packets, frames (video frames end on a marker) and losses per stream without decrypting
anything. `CountingClient` maps SSRCs to publishers from the server's subscribe offers and
counts every media datagram of its subscribe connection (in C, by the server's
extension's `HeaderCounter`, where it is built); only the streams of `full_streams`
publishers are received whole (SRTP, NACK, receiver reports, frames: by the server's C
receive path where it is built, else by aiortc's receiver; then the `StreamSink` that
decodes a sample and the `LatencyProbe`); the others are dropped once counted. The
server does the same work either way: it cannot tell.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import RTCRtpReceiver

from scripts.load import batch_reads
from scripts.load.batch_reads import BatchReader
from scripts.synthpeer.client import (
    MediaClient,
    ReceiverTap,
    StreamLabel,
    StreamsMap,
    source_of,
    stream_labels,
)
from scripts.synthpeer.media import LatencyProbe, SendLog
from scripts.synthpeer.sink import StreamSink
from sfu import MediaConfig, native_receive
from sfu.aiortc_adapter import testing as adapter_testing
from sfu.sdp import parse

Clock = Callable[[], float]

_RTP_FIELDS = struct.Struct("!xBH4xI")
"""Marker bit and payload type, sequence number, SSRC: the RTP header's, in clear."""


class StreamCount(Protocol):
    """A stream's counts from its RTP headers: `sfu.native_receive.HeaderCount` (counted
    in C) or `PacketCount`."""

    @property
    def packets(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def first_frame_at(self) -> float | None: ...
    @property
    def last_frame_at(self) -> float | None: ...


class PacketCount:
    """A stream's counts from its RTP headers, counted in Python: what runs where the C
    `HeaderCounter` is not built (its rules are the same)."""

    __slots__ = (
        "audio",
        "base_seq",
        "bytes",
        "first_frame_at",
        "frames",
        "highest_seq",
        "last_frame_at",
        "packets",
    )

    def __init__(self, audio: bool) -> None:
        self.audio = audio
        self.packets = 0
        self.bytes = 0
        self.frames = 0
        self.first_frame_at: float | None = None
        self.last_frame_at: float | None = None
        self.base_seq: int | None = None
        self.highest_seq = 0
        """Extended (unwrapped) highest sequence number seen."""

    def on_packet(self, seq: int, marker: bool, now: float, size: int = 0) -> None:
        self.packets += 1
        self.bytes += size
        if self.base_seq is None:
            self.base_seq = self.highest_seq = seq
        else:
            delta = (seq - self.highest_seq) & 0xFFFF
            if delta < 0x8000:
                self.highest_seq += delta
        if marker or self.audio:
            self.frames += 1
            self.last_frame_at = now
            if self.first_frame_at is None:
                self.first_frame_at = now

    @property
    def expected(self) -> int:
        return 0 if self.base_seq is None else self.highest_seq - self.base_seq + 1


@dataclass
class StreamCounter:
    """One stream (a publisher's track) as received by one subscriber."""

    subscriber: str
    publisher: str
    kind: str
    ssrc: int
    full: bool
    opened_at: float
    source: str = "camera"
    """``microphone``, ``camera`` or ``screen`` (labelled by the offer, else by kind)."""
    count: StreamCount | None = None
    """Where its packets are counted (a `PacketCount` of its own if not given)."""
    closed: bool = False
    marks: dict[str, dict[str, int]] = field(default_factory=dict)
    """Counter values at the edges of the measurement window ("start", "end")."""

    def __post_init__(self) -> None:
        if self.count is None:
            self.count = PacketCount(self.kind == "audio")
        self._count: StreamCount = self.count

    @property
    def packets(self) -> int:
        return self._count.packets

    @property
    def bytes(self) -> int:
        """RTP datagram bytes (SRTP, as on the wire, without IP/UDP headers)."""
        return self._count.bytes

    @property
    def frames(self) -> int:
        """Video: packets with the marker bit (frame ends); audio: packets (one frame each)."""
        return self._count.frames

    @property
    def expected(self) -> int:
        """Packets from the first to the highest sequence number seen."""
        return self._count.expected

    @property
    def first_frame_at(self) -> float | None:
        return self._count.first_frame_at

    @property
    def last_frame_at(self) -> float | None:
        return self._count.last_frame_at

    def mark(self, edge: str) -> None:
        """Remember the counters now (at an edge of the measurement window)."""
        self.marks[edge] = {
            "packets": self.packets,
            "bytes": self.bytes,
            "frames": self.frames,
            "expected": self.expected,
        }


class HeaderDrain:
    """A `sfu.aiortc_adapter.testing.Drain` that counts in C: what `counter` does not
    consume goes on, in order."""

    def __init__(self, counter: native_receive.HeaderCounter) -> None:
        self._counter = counter

    def __call__(self, sock: socket.socket, pass_on: Callable[[bytes, Any], None]) -> None:
        fd = sock.fileno()
        if fd >= 0:
            for datagram, address in self._counter.drain(fd):
                pass_on(datagram, address)


def _primary_ssrc(media: Any) -> int | None:
    for group in media.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    return int(media.ssrc[0].ssrc) if media.ssrc else None


def _is_remb(data: bytes) -> bool:
    """An (S)RTCP datagram that is a lone REMB (PSFB, FMT 15: aiortc sends it alone, and
    the first header stays in clear under SRTCP)."""
    return len(data) >= 2 and data[1] == 206 and data[0] & 0x1F == 15


class CountingClient(MediaClient):
    """A `MediaClient` whose subscribe connection counts every stream from RTP headers.

    `full_streams`: how many publishers' streams are received whole (by the C receive
    path where it is built, else by aiortc; `None`: all), one of them kept for
    `full_first` (the teacher: the camera every page shows) if given.
    Its REMBs are not sent then: aiortc estimates from the streams it receives, the
    fully received ones only, and the server would take that for the downlink's size.
    `on_counter` is told of every new `StreamCounter`. Streams the offer does not label
    (servers other than ours) are attributed to `default_publisher`, if given.
    """

    def __init__(
        self,
        config: MediaConfig,
        *,
        subscriber: str,
        full_streams: int | None,
        on_counter: Callable[[StreamCounter], None],
        clock: Clock = time.monotonic,
        default_publisher: str | None = None,
        full_first: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, **kwargs)
        self._full_first = full_first if full_first != subscriber else None
        self.subscriber = subscriber
        self._default_publisher = default_publisher
        self._full_streams = full_streams
        self._on_counter = on_counter
        self._clock = clock
        self._by_ssrc: dict[int, StreamCounter] = {}
        self._stream_owner: dict[str, StreamLabel] = {}
        self._full: set[str] = set()
        self._filtering = False
        self._native: list[adapter_testing.NativeFrames] = []
        self.sends_remb = full_streams is None
        self._header_counter = (
            native_receive.HeaderCounter()
            if native_receive.AVAILABLE and clock is time.monotonic  # C reads that clock
            else None
        )

    @property
    def counts_in_c(self) -> bool:
        """Whether its streams are counted by the C `HeaderCounter` (else in Python)."""
        return self._header_counter is not None

    async def subscribe_offer(self, offer_sdp: str, streams: StreamsMap) -> str:
        self._stream_owner.update(stream_labels(streams))
        self._map(offer_sdp)
        answer = await super().subscribe_offer(offer_sdp, streams)
        if not self._filtering and self.subscribe_pc is not None:
            # Counted in the socket's callback: a count-only packet never reaches aioice,
            # and a fully received one goes straight to SRTP and its receiver.
            adapter_testing.receive_synchronously(self.subscribe_pc)
            drain: adapter_testing.Drain | None = None
            if self._header_counter is not None:
                drain = HeaderDrain(self._header_counter)
            elif batch_reads.AVAILABLE:
                drain = BatchReader(self._on_view)
            adapter_testing.intercept_datagrams(self.subscribe_pc, self._on_datagram, drain)
            if self._full_streams is not None:
                adapter_testing.filter_datagrams(self.subscribe_pc, drop_outgoing=_is_remb)
            # The fully received streams go through the server's C receive path too
            # (SRTP, NACKs, receiver reports, frames), not aiortc's receiver per packet.
            self._native += adapter_testing.receive_frames_natively(
                self.subscribe_pc, self._tap_of, self.config.max_frame_wait
            )
            self._filtering = True
        return answer

    @property
    def frames_received_natively(self) -> int:
        """Frames of the fully received streams that the C receive path assembled (0
        where the extension is not built: aiortc's receivers get them)."""
        return sum(native.frames for native in self._native)

    def _tap_of(self, receiver: RTCRtpReceiver) -> ReceiverTap | None:
        return next((tap for tap in self._taps.values() if tap.receiver is receiver), None)

    async def close(self) -> None:
        for native in self._native:
            native.close()
        await super().close()

    def _map(self, offer_sdp: str) -> None:
        for media in parse(offer_sdp).media:
            if media.kind not in ("audio", "video"):
                continue
            ssrc = _primary_ssrc(media)
            if ssrc is None:
                continue
            sending = (media.direction or "sendrecv") in ("sendonly", "sendrecv")
            stream_id = media.msid.split()[0] if media.msid else None
            label = self._stream_owner.get(stream_id or "")
            owner = label.user_id if label is not None else self._default_publisher
            publisher = owner if sending else None
            source = source_of(label, media.kind)
            current = self._by_ssrc.get(ssrc)
            if current is not None and (current.publisher, current.source) == (publisher, source):
                continue
            if current is not None:
                current.closed = True
                del self._by_ssrc[ssrc]
                if self._header_counter is not None:
                    self._header_counter.forget(ssrc)
            if publisher is None:
                continue
            full = self._is_full(publisher)
            count = None
            if self._header_counter is not None:
                count = self._header_counter.watch(ssrc, media.kind == "audio", not full)
            counter = StreamCounter(
                self.subscriber, publisher, media.kind, ssrc, full, self._clock(), source, count
            )
            self._by_ssrc[ssrc] = counter
            self._on_counter(counter)

    def _is_full(self, publisher: str) -> bool:
        if publisher in self._full:
            return True
        limit = self._full_streams
        reserved = self._full_first is not None and self._full_first not in self._full
        if (
            limit is None
            or (publisher == self._full_first and limit > 0)
            or len(self._full) + reserved < limit
        ):
            self._full.add(publisher)
            return True
        return False

    def _on_datagram(self, data: bytes) -> bool:
        """Count a received (S)RTP datagram; `True` consumes it (count-only streams)."""
        if self._header_counter is not None:
            return self._header_counter.feed(data)
        return self._on_view(data, 0, len(data))

    def _on_view(self, buffer: bytes | memoryview, offset: int, length: int) -> bool:
        """`_on_datagram` in Python, for the datagram at `offset` of `buffer` (a batch's)."""
        if length < 12 or 192 <= buffer[offset + 1] <= 223:  # short, or RTCP
            return False
        marker_type, seq, ssrc = _RTP_FIELDS.unpack_from(buffer, offset)
        counter = self._by_ssrc.get(ssrc)
        if counter is None or not isinstance(counter.count, PacketCount):
            return False
        counter.count.on_packet(seq, marker_type > 127, self._clock(), length)
        return not counter.full

    def attach_probes(self, send_logs: Mapping[str, SendLog]) -> list[LatencyProbe]:
        """Give each fully received video sink a latency probe on its publisher's send
        log; return the probes added."""
        added = []
        for stream in self.received.values():
            if stream.source not in (None, "camera"):  # the send logs date camera frames
                continue
            sink = stream.sinks.get("video")
            log = send_logs.get(stream.participant_id)
            if log is None and self._default_publisher is not None:
                log = send_logs.get(self._default_publisher)
            if sink is not None and sink.probe is None and log is not None:
                sink.probe = LatencyProbe(log)
                added.append(sink.probe)
        return added

    def video_sinks(self) -> list[StreamSink]:
        """Every video sink this client has had (current and finished)."""
        sinks: list[StreamSink] = []
        for stream in self.received.values():
            sinks += [s for s in stream.finished if s.kind == "video"]
            if "video" in stream.sinks:
                sinks.append(stream.sinks["video"])
        return sinks

    def close_counters(self) -> None:
        for ssrc, counter in self._by_ssrc.items():
            counter.closed = True
            if self._header_counter is not None:
                self._header_counter.forget(ssrc)
        self._by_ssrc.clear()

"""What `tests/sfu/test_native_receive*.py` compare `sfu._receive` with: seeded packet
streams (VP8, H.264, Opus with audio levels, RTX) perturbed like a network would, and the
Python receive path the C code replaces (aiortc's `RtpPacket.parse`, RTX unwrapping,
`NackGenerator` and `StreamStatistics`, then `sfu.assembler`), both reduced to one event
format so that their outputs compare with ``==``.
"""

from __future__ import annotations

import itertools
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pylibsrtp
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import depayload
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, unwrap_rtx

from sfu import native_receive
from sfu.aiortc_adapter import srtp_unprotect_pointers
from sfu.assembler import AudioFramePassthrough, VideoFrameAssembler
from tests.native_extensions import require_extension

AUDIO_LEVEL_ID = 1
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
OTHER_EXTENSION_ID = 3  # not configured: parsed over, its value ignored
UNKNOWN_PT = 50  # a payload type no stream has: dropped by both paths

NO_TIMEOUT = 1e9  # max_wait: a hole is waited for as long as a test runs

Event = tuple[Any, ...]


def require_native_receive() -> None:
    """Skip the calling test without `sfu._receive` (fail on CI, which builds it)."""
    require_extension(native_receive.AVAILABLE, "sfu._receive")


def new_receiver(max_wait: float = NO_TIMEOUT, session: Any = None) -> Any:
    """A native `Receiver` unprotecting on `session` (by default a fresh inbound one,
    which `feed_plain` never uses), reading audio levels at `AUDIO_LEVEL_ID`."""
    if session is None:
        session = pylibsrtp.Session(
            pylibsrtp.Policy(key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
        )
    unprotect, srtp = srtp_unprotect_pointers(session)
    return native_receive.Receiver(
        unprotect, srtp, session, audio_level_id=AUDIO_LEVEL_ID, max_wait=max_wait
    )


@dataclass(frozen=True)
class StreamSpec:
    """One media stream of a receiver: `kind` is ``"VP8"``, ``"H264"`` or ``"opus"``."""

    kind: str
    ssrc: int
    payload_type: int
    clock_rate: int
    token: str
    rtx_ssrc: int | None = None
    rtx_payload_type: int | None = None

    @property
    def codec(self) -> Any:
        """aiortc's codec parameters (what `depayload` dispatches on)."""
        mime = "audio/opus" if self.kind == "opus" else f"video/{self.kind}"
        return RTCRtpCodecParameters(
            mimeType=mime, clockRate=self.clock_rate, payloadType=self.payload_type
        )

    @property
    def native_kind(self) -> int:
        """The `sfu.native_receive` constant of the stream's kind."""
        kinds = {"VP8": native_receive.VP8, "H264": native_receive.H264}
        return kinds.get(self.kind, native_receive.AUDIO)


VP8_SPEC = StreamSpec("VP8", 0x1111_0001, 96, 90000, "vp8", 0x1111_0002, 97)
H264_SPEC = StreamSpec("H264", 0x2222_0001, 102, 90000, "h264", 0x2222_0002, 103)
OPUS_SPEC = StreamSpec("opus", 0x3333_0001, 111, 48000, "opus")
ALL_SPECS = (VP8_SPEC, H264_SPEC, OPUS_SPEC)


def configure(receiver: Any, specs: Sequence[StreamSpec]) -> None:
    """Add `specs` (and their RTX streams) to a native `Receiver`."""
    for spec in specs:
        receiver.add_stream(
            spec.ssrc, spec.native_kind, spec.payload_type, spec.clock_rate, spec.token
        )
        if spec.rtx_ssrc is not None:
            receiver.add_rtx(spec.rtx_ssrc, spec.ssrc, spec.rtx_payload_type)


def normalize(events: Sequence[Event], specs: Sequence[StreamSpec]) -> list[Event]:
    """The native events in the reference's form: a frame's payloads depayloaded with
    aiortc's `depayload` and joined (what `VideoFrameAssembler` hands on)."""
    codecs = {spec.token: spec for spec in specs}
    out: list[Event] = []
    for event in events:
        if event[0] == native_receive.FRAME:
            _, token, payloads, pts, keyframe, temporal, sync = event
            spec = codecs[token]
            data = b"".join(depayload(spec.codec, p) if p else b"" for p in payloads)
            out.append((event[0], token, data, pts, keyframe, temporal, sync))
        else:
            out.append(tuple(event))
    return out


# ------------------------------------------------------------------ the Python path


class _Stream:
    def __init__(
        self, spec: StreamSpec, events: list[Event], max_wait: float, now: Callable[[], float]
    ) -> None:
        self.spec = spec
        self.nack = NackGenerator()
        self.nacked = 0
        self.dropped = 0
        token = spec.token
        if spec.kind == "opus":
            self.assembler: Any = AudioFramePassthrough(
                on_frame=lambda data, pts, key: events.append(
                    (native_receive.FRAME, token, data, pts, key, 0, False)
                ),
                on_level=lambda level, voice: events.append(
                    (native_receive.LEVEL, token, level, voice)
                ),
                on_silence=lambda: events.append((native_receive.SILENCE, token)),
            )
        else:
            assembler = VideoFrameAssembler(
                spec.kind,
                on_frame=lambda data, pts, key: events.append(
                    (
                        native_receive.FRAME,
                        token,
                        data,
                        pts,
                        key,
                        assembler.frame_temporal,
                        assembler.frame_layer_sync,
                    )
                ),
                on_loss=lambda: events.append((native_receive.LOSS, token)),
                max_wait=max_wait,
                clock=now,
            )
            self.assembler = assembler


class PythonReceiver:
    """aiortc's receive steps (`RTCRtpReceiver._handle_rtp_packet`) with
    `sfu.assembler` as the jitter buffer, producing `sfu.native_receive` events.

    `feed(rtp)` is the counterpart of ``Receiver.feed_plain``; `statistics` and `counts`
    of the native methods of the same names (without jitter, see `jitter`).
    """

    def __init__(
        self,
        specs: Sequence[StreamSpec],
        max_wait: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parameters = RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=AUDIO_LEVEL_ID, uri=AUDIO_LEVEL_URI)
            ]
        )
        self._extensions = HeaderExtensionsMap()
        self._extensions.configure(parameters)
        self._events: list[Event] = []
        self._media = {spec.ssrc: _Stream(spec, self._events, max_wait, clock) for spec in specs}
        self._rtx = {spec.rtx_ssrc: spec for spec in specs if spec.rtx_ssrc is not None}
        self._rtx_dropped = dict.fromkeys(self._rtx, 0)
        self._statistics: dict[int, Any] = {}
        self.malformed = 0

    def feed(self, rtp: bytes) -> list[Event]:
        """The events one unprotected RTP packet gives."""
        self._events.clear()
        try:
            packet = RtpPacket.parse(rtp, self._extensions)
        except ValueError:
            self.malformed += 1
            return []
        ssrc = packet.ssrc
        stream = self._media.get(ssrc)
        rtx = self._rtx.get(ssrc)
        if stream is None and rtx is None:
            return [(native_receive.UNKNOWN, rtp)]
        # A known SSRC with another payload type goes back to Python to be routed again
        # (a renegotiated codec); the adapter drops what its receiver has no codec for.
        if rtx is not None:
            if packet.payload_type != rtx.rtx_payload_type:
                self._rtx_dropped[ssrc] += 1
                return [(native_receive.UNKNOWN, rtp)]
            stream = self._media[rtx.ssrc]
        else:
            assert stream is not None
            if packet.payload_type != stream.spec.payload_type:
                stream.dropped += 1
                return [(native_receive.UNKNOWN, rtp)]
        spec = stream.spec
        if ssrc not in self._statistics:
            self._statistics[ssrc] = StreamStatistics(spec.clock_rate)
        self._statistics[ssrc].add(packet)
        if rtx is not None:
            if len(packet.payload) < 2:
                return []  # a padding-only probe
            packet = unwrap_rtx(packet, payload_type=spec.payload_type, ssrc=spec.ssrc)
        if spec.kind != "opus" and stream.nack.add(packet):
            missing = sorted(stream.nack.missing)
            stream.nacked += len(missing)
            self._events.append((native_receive.NACK, spec.token, spec.ssrc, missing))
        data = depayload(spec.codec, packet.payload) if packet.payload else b""
        stream.assembler.push(packet, data)
        return list(self._events)

    def statistics(self, ssrc: int) -> tuple[int, int, int, int] | None:
        """``(received, base_seq, max_seq, cycles)`` of aiortc's `StreamStatistics`."""
        stats = self._statistics.get(ssrc)
        if stats is None:
            return None
        return (stats.packets_received, stats.base_seq, stats.max_seq, stats.cycles)

    def jitter(self, ssrc: int) -> int | None:
        """aiortc's interarrival jitter (its arrival clock is ``time.time``)."""
        stats = self._statistics.get(ssrc)
        return None if stats is None else int(stats.jitter)

    def counts(self, ssrc: int) -> dict[str, int] | None:
        """The native `counts` dict, from the assembler's own counters."""
        if ssrc in self._rtx_dropped:
            zero = dict.fromkeys(
                ("packets", "frames", "keyframes", "late_packets", "skipped", "silent_frames"),
                0,
            )
            return {**zero, "nacked": 0, "dropped": self._rtx_dropped[ssrc], "over_cap": 0}
        stream = self._media.get(ssrc)
        if stream is None:
            return None
        a = stream.assembler
        return {
            "packets": a.packets,
            "frames": a.frames,
            "keyframes": getattr(a, "keyframes", 0),
            "late_packets": a.late_packets,
            "skipped": getattr(a, "skipped", 0),
            "silent_frames": getattr(a, "silent_frames", 0),
            "nacked": stream.nacked,
            "dropped": stream.dropped,
            "over_cap": 0,  # the reference caps nothing (new_receiver sets no caps)
        }


# ------------------------------------------------------------------ streams


@dataclass
class Packet:
    """One RTP packet before serialization (`bytes(packet)`)."""

    ssrc: int
    payload_type: int
    seq: int
    timestamp: int
    marker: bool
    payload: bytes
    padding: int = 0
    csrcs: int = 0
    extension: bytes = b""  # the whole extension block: profile, length, values

    def __bytes__(self) -> bytes:
        first = 0x80 | (0x20 if self.padding else 0) | (0x10 if self.extension else 0)
        header = struct.pack(
            "!BBHLL",
            first | self.csrcs,
            (0x80 if self.marker else 0) | self.payload_type,
            self.seq & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        csrc = b"".join(struct.pack("!L", 0xC0C0_0000 + i) for i in range(self.csrcs))
        pad = b""
        if self.padding:
            pad = bytes(self.padding - 1) + bytes((self.padding,))
        return header + csrc + self.extension + self.payload + pad


def _noise(rng: random.Random, n: int) -> bytes:
    """Bytes without zeros: no accidental H.264 start code inside a NAL unit."""
    return bytes(rng.randrange(1, 256) for _ in range(n))


def _split(rng: random.Random, data: bytes, parts: int) -> list[bytes]:
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(parts - 1))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@dataclass
class _Vp8Style:
    picture_id: int | None  # None: no I field
    long_picture_id: bool
    temporal: bool  # L1T3: TL0PICIDX and TID/Y
    keyidx: bool
    extended: bool


def _vp8_descriptor(style: _Vp8Style, start: bool, partition: int, frame_index: int) -> bytes:
    first = (0x10 if start else 0) | partition
    if not style.extended:
        return bytes((first,))
    x = 0
    tail = b""
    if style.picture_id is not None:
        x |= 0x80
        pid = (style.picture_id + frame_index) & (0x7FFF if style.long_picture_id else 0x7F)
        tail += struct.pack("!H", 0x8000 | pid) if style.long_picture_id else bytes((pid,))
    if style.temporal:
        x |= 0x60
        tail += bytes((frame_index // 4 & 0xFF,))
    if style.keyidx:
        x |= 0x10
    if style.temporal or style.keyidx:
        tid = (0, 2, 1, 2)[frame_index % 4] if style.temporal else 0
        sync = style.temporal and tid > 0 and frame_index % 8 < 4
        tail += bytes(((tid << 6) | (0x20 if sync else 0) | (frame_index & 0x1F),))
    return bytes((0x80 | first, x)) + tail


def vp8_frames(rng: random.Random, count: int) -> list[list[bytes]]:
    """`count` VP8 frames, each the RTP payloads of its 1-6 packets."""
    style = _Vp8Style(
        picture_id=rng.choice((None, rng.randrange(0x8000))),
        long_picture_id=rng.random() < 0.5,
        temporal=rng.random() < 0.5,
        keyidx=rng.random() < 0.2,
        extended=rng.random() < 0.85,
    )
    frames = []
    for index in range(count):
        key = index == 0 or rng.random() < 0.1
        tiny = index > 0 and rng.random() < 0.1  # shorter than a keyframe header
        size = rng.randrange(0, 10) if tiny else rng.randrange(10, 120)
        body = bytearray(_noise(rng, size))
        if len(body) >= 6:
            body[0] = (body[0] & 0xFE) | (0 if key else 1)
            if key:
                body[3:6] = b"\x9d\x01\x2a"
        parts = _split(rng, bytes(body), rng.randrange(1, 7))
        payloads = []
        for i, part in enumerate(parts):
            partition = 1 if i and rng.random() < 0.2 else 0
            start = i == 0 or (partition == 1 and rng.random() < 0.5)
            payloads.append(_vp8_descriptor(style, start, partition, index) + part)
        frames.append(payloads)
    return frames


def _nal(rng: random.Random, nal_type: int, first_slice: bool = True) -> bytes:
    header = (rng.randrange(1, 4) << 5) | nal_type
    body = bytearray(_noise(rng, rng.randrange(2, 90)))
    if nal_type in (1, 5):
        body[0] = (body[0] | 0x80) if first_slice else (body[0] & 0x7F) or 0x01
    return bytes((header,)) + bytes(body)


def _packetize_nal(rng: random.Random, nal: bytes) -> list[bytes]:
    if len(nal) < 20 or rng.random() < 0.5:
        return [nal]
    fragments = _split(rng, nal[1:], rng.randrange(2, 5))
    indicator = (nal[0] & 0xE0) | 28
    out = []
    for i, fragment in enumerate(fragments):
        flags = (0x80 if i == 0 else 0) | (0x40 if i == len(fragments) - 1 else 0)
        out.append(bytes((indicator, flags | (nal[0] & 0x1F))) + fragment)
    return out


def _stap_a(nals: Sequence[bytes]) -> bytes:
    return bytes((0x78,)) + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def h264_frames(rng: random.Random, count: int) -> list[list[bytes]]:
    """`count` H.264 access units as RTP payloads: single NAL units, STAP-A, FU-A; IDR
    (type 5, behind SPS/PPS) and non-IDR (type 1) slices, one or two per picture."""
    frames = []
    for index in range(count):
        key = index == 0 or rng.random() < 0.1
        slice_type = 5 if key else 1
        payloads: list[bytes] = []
        if rng.random() < 0.2:
            payloads.append(_nal(rng, 9)[:2])  # an access unit delimiter
        if key:
            parameter_sets = [_nal(rng, 7), _nal(rng, 8)]
            if rng.random() < 0.6:
                payloads.append(_stap_a(parameter_sets))
            else:
                payloads.extend(parameter_sets)
        slices = [_nal(rng, slice_type)]
        if rng.random() < 0.3:
            slices.append(_nal(rng, slice_type, first_slice=False))
        if not key and len(slices) == 2 and rng.random() < 0.3:
            payloads.append(_stap_a(slices))
        else:
            for nal in slices:
                payloads.extend(_packetize_nal(rng, nal))
        frames.append(payloads[:6] if len(payloads) > 6 else payloads)
    return frames


def level_extension(level: int, voice: bool, other: bool = False) -> bytes:
    """An RFC 8285 one-byte-header block (0xBEDE) with the RFC 6464 audio level, and
    optionally an unconfigured extension before it."""
    values = b""
    if other:
        values += bytes(((OTHER_EXTENSION_ID << 4) | 1,)) + b"\x12\x34"
    values += bytes(((AUDIO_LEVEL_ID << 4) | 0, (0x80 if voice else 0) | level))
    values += bytes(-len(values) % 4)
    return struct.pack("!HH", 0xBEDE, len(values) // 4) + values


@dataclass
class Perturbation:
    """How a stream is mangled on its way (probabilities per packet)."""

    loss: float = 0.05
    reorder: float = 0.05
    duplicate: float = 0.03
    late: float = 0.01
    padding: float = 0.05
    rtx: float = 0.6  # of lost video packets, retransmitted later
    spurious_rtx: float = 0.02  # of received ones, retransmitted all the same
    probe: float = 0.02  # padding-only RTX
    jump: float = 0.01  # a sequence number jump (of 129-511 or 513-3000)
    restart: float = 0.0  # a jump of 40000 (slow: aiortc then marks ~25000 missing)
    wrong_pt: float = 0.01
    unknown_ssrc: float = 0.005
    no_marker: float = 0.1  # of frames


@dataclass
class _Sender:
    spec: StreamSpec
    seq: int
    timestamp: int
    rtx_seq: int
    sent: list[Packet] = field(default_factory=list)


def _frames_to_packets(
    rng: random.Random, sender: _Sender, frames: list[list[bytes]], p: Perturbation
) -> list[Packet]:
    spec = sender.spec
    out = []
    for payloads in frames:
        no_marker = rng.random() < p.no_marker
        for i, payload in enumerate(payloads):
            if rng.random() < p.jump:
                sender.seq += rng.choice((rng.randrange(129, 512), rng.randrange(513, 3000)))
            if rng.random() < p.restart:
                sender.seq += 40000  # looks older than everything: late until it wraps
            last = i == len(payloads) - 1
            out.append(
                Packet(
                    spec.ssrc,
                    spec.payload_type,
                    sender.seq & 0xFFFF,
                    sender.timestamp & 0xFFFFFFFF,
                    last and not no_marker,
                    payload,
                    csrcs=rng.choice((0, 0, 0, 1, 2)),
                )
            )
            sender.seq += 1
        step = spec.clock_rate // 30
        if rng.random() < 0.02:
            step = rng.randrange(0, 0x10000000)  # a pause, or a clock jump
        sender.timestamp += step
    return out


def _audio_packets(
    rng: random.Random, sender: _Sender, count: int, p: Perturbation
) -> list[Packet]:
    spec = sender.spec
    out = []
    for _ in range(count):
        if rng.random() < p.jump:
            sender.seq += rng.randrange(129, 3000)
        extension = b""
        if rng.random() < 0.9:
            level = 127 if rng.random() < 0.25 else rng.randrange(0, 127)
            extension = level_extension(level, rng.random() < 0.5, rng.random() < 0.2)
        out.append(
            Packet(
                spec.ssrc,
                spec.payload_type,
                sender.seq & 0xFFFF,
                sender.timestamp & 0xFFFFFFFF,
                rng.random() < 0.05,
                _noise(rng, rng.randrange(1, 80)),
                extension=extension,
            )
        )
        sender.seq += 1
        sender.timestamp += 960
    return out


def _network(
    rng: random.Random, sender: _Sender, packets: list[Packet], p: Perturbation
) -> list[Packet]:
    spec = sender.spec
    out: list[Packet] = []
    pending: list[tuple[int, Packet]] = []  # (release index, packet)
    for packet in packets:
        if rng.random() < p.padding:
            packet.padding = rng.randrange(1, 64)
        if rng.random() < p.wrong_pt:
            out.append(Packet(**{**vars(packet), "payload_type": UNKNOWN_PT}))
        if rng.random() < p.unknown_ssrc:
            out.append(Packet(**{**vars(packet), "ssrc": 0x0BAD_0000 | packet.seq}))
        lost = rng.random() < p.loss
        if not lost:
            if rng.random() < p.reorder:
                pending.append((len(out) + rng.randrange(1, 8), packet))
            else:
                out.append(packet)
            if rng.random() < p.duplicate:
                pending.append((len(out) + rng.randrange(0, 20), packet))
            if rng.random() < p.late:
                pending.append((len(out) + rng.randrange(100, 700), packet))
        if spec.rtx_ssrc is not None:
            assert spec.rtx_payload_type is not None
            if rng.random() < (p.rtx if lost else p.spurious_rtx):
                rtx = Packet(
                    spec.rtx_ssrc,
                    spec.rtx_payload_type,
                    sender.rtx_seq & 0xFFFF,
                    packet.timestamp,
                    packet.marker,
                    struct.pack("!H", packet.seq) + packet.payload,
                    padding=rng.choice((0, 0, 0, 7)),
                )
                sender.rtx_seq += 1
                pending.append((len(out) + rng.randrange(2, 40), rtx))
            if rng.random() < p.probe:
                probe = Packet(
                    spec.rtx_ssrc,
                    spec.rtx_payload_type,
                    sender.rtx_seq & 0xFFFF,
                    packet.timestamp,
                    False,
                    b"",
                    padding=rng.randrange(1, 256),
                )
                sender.rtx_seq += 1
                out.append(probe)
        due = [item for item in pending if item[0] <= len(out)]
        for item in due:
            pending.remove(item)
            out.append(item[1])
    out.extend(packet for _, packet in sorted(pending, key=lambda item: item[0]))
    return out


def stream(
    rng: random.Random,
    spec: StreamSpec,
    units: int,
    perturbation: Perturbation | None = None,
) -> list[bytes]:
    """`units` frames (video) or packets (audio) of `spec`, perturbed, serialized.

    Sequence numbers and timestamps start close to their wrap-around often.
    """
    p = perturbation or Perturbation()
    sender = _Sender(
        spec,
        seq=rng.choice((0xFFFF - rng.randrange(0, 40), rng.randrange(0x10000))),
        timestamp=rng.choice((0xFFFFFFFF - rng.randrange(0, 200000), rng.randrange(1 << 32))),
        rtx_seq=rng.choice((0xFFFF - rng.randrange(0, 10), rng.randrange(0x10000))),
    )
    if spec.kind == "VP8":
        packets = _frames_to_packets(rng, sender, vp8_frames(rng, units), p)
    elif spec.kind == "H264":
        packets = _frames_to_packets(rng, sender, h264_frames(rng, units), p)
    else:
        packets = _audio_packets(rng, sender, units, p)
    return [bytes(packet) for packet in _network(rng, sender, packets, p)]


def interleave(rng: random.Random, streams: Sequence[list[bytes]]) -> list[bytes]:
    """The streams' packets merged in a random order, each stream's order kept."""
    queues = [list(reversed(s)) for s in streams if s]
    out = []
    while queues:
        queue = rng.choice(queues)
        out.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return out

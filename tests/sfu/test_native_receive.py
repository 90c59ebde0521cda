"""sfu._receive against the Python receive path it replaces, on seeded packet streams.

The same unprotected RTP packets go to the native `Receiver` (``feed_plain``) and to
`PythonReceiver` (aiortc's `RtpPacket.parse`, RTX unwrapping, `NackGenerator`,
`StreamStatistics`, then `sfu.assembler` with aiortc's `depayload`), packet by packet:
every packet must give the same events (frames with their pts, keyframe flag, temporal
layer and layer sync; losses; NACKs; audio levels and silence), and at the end the same
receive statistics and counters. The streams: VP8 (7- and 15-bit picture ids, with and
without L1T3 fields), H.264 (single NAL, STAP-A, FU-A, IDR and not), Opus with RFC 6464
levels, mangled by loss, reordering, duplicates, wrap-arounds, jumps, late packets,
padding, RTX retransmissions and padding-only RTX probes (`tests/sfu/receive_reference.py`).
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Sequence
from typing import Any

import pytest

from sfu import native_receive
from tests.sfu.receive_reference import (
    ALL_SPECS,
    AUDIO_LEVEL_ID,
    H264_SPEC,
    NO_TIMEOUT,
    OPUS_SPEC,
    VP8_SPEC,
    Packet,
    Perturbation,
    PythonReceiver,
    StreamSpec,
    configure,
    interleave,
    level_extension,
    new_receiver,
    normalize,
    require_native_receive,
    stream,
)


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_native_receive()


class Pair:
    """A native receiver and the Python reference, fed the same packets."""

    def __init__(self, specs: Sequence[StreamSpec], max_wait: float = NO_TIMEOUT) -> None:
        self.specs = specs
        self.native = new_receiver(max_wait)
        configure(self.native, specs)
        self.python = PythonReceiver(specs, max_wait=max_wait, clock=time.monotonic)
        self.longest_step = 0.0  # seconds between a packet's two arrival times, at most
        self.events: list[Any] = []

    def feed(self, rtp: bytes, where: str) -> list[Any]:
        """Feed both; their events must match. Returns them."""
        start = time.time()
        native = normalize(self.native.feed_plain(rtp), self.specs)
        python = self.python.feed(rtp)
        self.longest_step = max(self.longest_step, time.time() - start)
        assert native == python, f"{where}: {rtp.hex()}"
        self.events.extend(python)
        return python

    def check_totals(self, where: str) -> None:
        """Statistics and counters of every SSRC agree; jitter within what the two
        arrival clocks (read microseconds apart) allow."""
        ssrcs = [s.ssrc for s in self.specs] + [s.rtx_ssrc for s in self.specs if s.rtx_ssrc]
        assert sorted(self.native.ssrcs) == sorted(ssrcs)
        for spec in self.specs:
            for ssrc in (spec.ssrc, spec.rtx_ssrc):
                if ssrc is None:
                    continue
                native = self.native.statistics(ssrc)
                python = self.python.statistics(ssrc)
                assert (native and native[:4]) == python, f"{where}: statistics of {ssrc:#x}"
                assert self.native.counts(ssrc) == self.python.counts(ssrc), where
                if native is not None:
                    # |arrival difference| differs by at most two steps' worth of ticks,
                    # and the jitter filter keeps that bound (plus rounding).
                    tolerance = 2 * self.longest_step * spec.clock_rate + 4
                    jitter = self.python.jitter(ssrc)
                    assert jitter is not None
                    assert abs(native[4] - jitter) <= tolerance, f"{where}: jitter {ssrc:#x}"


def run_streams(
    seed: int,
    specs: Sequence[StreamSpec],
    units: int,
    perturbation: Perturbation | None = None,
) -> Pair:
    """One seeded run: streams of `specs` interleaved, fed to a `Pair`, totals checked."""
    rng = random.Random(seed)
    packets = interleave(rng, [stream(rng, spec, units, perturbation) for spec in specs])
    pair = Pair(specs)
    for index, rtp in enumerate(packets):
        pair.feed(rtp, f"seed {seed}, packet {index}")
    pair.check_totals(f"seed {seed}")
    return pair


def kinds(events: Sequence[Any]) -> set[int]:
    """The event types seen."""
    return {event[0] for event in events}


@pytest.mark.parametrize("seed", range(40))
def test_mixed_streams_match_the_python_path(seed: int) -> None:
    pair = run_streams(seed, ALL_SPECS, units=120)
    seen = kinds(pair.events)
    assert native_receive.FRAME in seen
    assert native_receive.LEVEL in seen


@pytest.mark.parametrize("seed", range(100, 130))
def test_vp8_under_heavy_loss_matches(seed: int) -> None:
    harsh = Perturbation(loss=0.2, reorder=0.15, duplicate=0.1, late=0.03, jump=0.03)
    pair = run_streams(seed, [VP8_SPEC], units=150, perturbation=harsh)
    assert {native_receive.NACK, native_receive.FRAME} <= kinds(pair.events)


@pytest.mark.parametrize("seed", range(200, 230))
def test_h264_under_heavy_loss_matches(seed: int) -> None:
    harsh = Perturbation(loss=0.15, reorder=0.15, duplicate=0.1, late=0.03, jump=0.03)
    pair = run_streams(seed, [H264_SPEC], units=150, perturbation=harsh)
    assert {native_receive.NACK, native_receive.FRAME} <= kinds(pair.events)


@pytest.mark.parametrize("seed", range(300, 310))
def test_clean_streams_lose_nothing(seed: int) -> None:
    clean = Perturbation(
        loss=0, reorder=0, duplicate=0, late=0, padding=0.1, probe=0.05, jump=0, wrong_pt=0
    )
    pair = run_streams(seed, ALL_SPECS, units=80, perturbation=clean)
    seen = kinds(pair.events)
    assert native_receive.LOSS not in seen
    assert native_receive.NACK not in seen
    frames = [e for e in pair.events if e[0] == native_receive.FRAME and e[1] == "vp8"]
    assert len(frames) >= 70  # all but those cut short by a missing marker at the end
    assert frames[0][4] is True  # the first frame is a keyframe


@pytest.mark.parametrize("seed", range(400, 420))
def test_opus_levels_and_silence_match(seed: int) -> None:
    pair = run_streams(seed, [OPUS_SPEC], units=300)
    levels = [e for e in pair.events if e[0] == native_receive.LEVEL]
    assert any(e[2] == 127 for e in levels)
    assert {e[3] for e in levels} == {True, False}
    assert native_receive.SILENCE in kinds(pair.events)


@pytest.mark.parametrize("seed", range(600, 604))
def test_streams_that_restart_far_ahead_match(seed: int) -> None:
    # A jump of 40000 reads as 25536 behind: late packets until the numbers come round.
    restarts = Perturbation(restart=0.01)
    pair = run_streams(seed, [VP8_SPEC, OPUS_SPEC], units=100, perturbation=restarts)
    assert (pair.native.counts(VP8_SPEC.ssrc) or {})["late_packets"] > 0


@pytest.mark.parametrize("seed", range(500, 506))
def test_skipping_after_max_wait_matches(seed: int) -> None:
    """Holes not filled within `max_wait` are skipped alike: packets go in bursts of a
    few (well under `max_wait` long), with sleeps longer than `max_wait` between them, so
    both clocks (CLOCK_MONOTONIC, `time.monotonic`) see a wait on the same side of it."""
    max_wait = 0.005
    rng = random.Random(seed)
    lossy = Perturbation(loss=0.1, rtx=0.5)
    specs = [VP8_SPEC, H264_SPEC]
    packets = interleave(rng, [stream(rng, spec, 40, lossy) for spec in specs])
    pair = Pair(specs, max_wait=max_wait)
    longest_burst = 0.0
    index = 0
    try:
        while index < len(packets):
            burst = packets[index : index + rng.randrange(1, 12)]
            start = time.monotonic()
            for rtp in burst:
                pair.feed(rtp, f"seed {seed}, packet {index}")
                index += 1
            longest_burst = max(longest_burst, time.monotonic() - start)
            time.sleep(max_wait * 1.6)
    except AssertionError:
        if longest_burst > max_wait / 2:
            pytest.skip(f"a burst took {longest_burst * 1e3:.1f} ms: too slow to compare")
        raise
    pair.check_totals(f"seed {seed}")
    skipped = sum((pair.native.counts(s.ssrc) or {})["skipped"] for s in specs)
    assert skipped > 0


def vp8(seq: int, body: bytes, ts: int, start: bool = True, marker: bool = True) -> bytes:
    """A VP8 packet of `VP8_SPEC` with a descriptor of a 15-bit picture id and L1T3."""
    descriptor = bytes((0x90 if start else 0x80, 0xE0, 0x81, 0x23, 0x05, 0x20 | 0x40))
    spec = VP8_SPEC
    return bytes(Packet(spec.ssrc, spec.payload_type, seq, ts, marker, descriptor + body))


KEY_HEADER = b"\x00\x00\x00\x9d\x01\x2a\x40\x01\xf0\x00"


def test_a_keyframe_header_split_over_packets_wraps_and_unwraps() -> None:
    pair = Pair([VP8_SPEC])
    ts = 0xFFFF_FF00
    events = []
    for seq, body, marker in ((65534, KEY_HEADER[:2], False), (65535, KEY_HEADER[2:], False)):
        events += pair.feed(vp8(seq, body, ts, start=seq == 65534, marker=marker), "key")
    events += pair.feed(vp8(0, b"rest", ts), "key")
    events += pair.feed(vp8(1, b"\x01delta", 0x0000_0A00), "delta")
    assert events == [
        (native_receive.FRAME, "vp8", KEY_HEADER + b"rest", 0, True, 1, True),
        (native_receive.FRAME, "vp8", b"\x01delta", 0xB00, False, 1, True),
    ]
    assert pair.native.statistics(VP8_SPEC.ssrc)[:4] == (4, 65534, 1, 1 << 16)
    pair.check_totals("wrap")


def test_a_jump_past_the_buffer_loses_sync_and_nacks_only_the_last_128() -> None:
    pair = Pair([VP8_SPEC])
    pair.feed(vp8(10, KEY_HEADER, 0), "first")
    events = pair.feed(vp8(10 + 200, b"\x01", 3000), "jump of 200")
    assert events[0][:3] == (native_receive.NACK, "vp8", VP8_SPEC.ssrc)
    assert events[0][3] == list(range(210 - 128, 210))
    events = pair.feed(vp8(210 + 600, b"\x01", 6000), "jump of 600")
    # The buffer is emptied (a keyframe is needed), then the packet starts it anew.
    assert [e[0] for e in events] == [
        native_receive.NACK,
        native_receive.LOSS,
        native_receive.FRAME,
    ]
    assert events[2][2:5] == (b"\x01", 6000, False)
    pair.check_totals("jumps")


def test_malformed_packets_are_dropped_alike() -> None:
    pair = Pair([VP8_SPEC, OPUS_SPEC])
    good = vp8(5, KEY_HEADER, 0)
    malformed = [
        good[:11],  # shorter than a header
        bytes((0x40,)) + good[1:],  # version 1
        bytes((0x83,)) + good[1:20],  # three CSRCs announced, not there
        bytes((0x90,)) + good[1:12] + b"\xbe\xde",  # extension header cut
        bytes((0x90,)) + good[1:12] + b"\xbe\xde\x00\x09" + bytes(8),  # extension cut
        bytes((0xA0,)) + good[1:-1] + b"\x00",  # padding length 0
        bytes((0xA0,)) + good[1:-1] + b"\xff",  # more padding than payload
    ]
    for index, rtp in enumerate(malformed):
        assert pair.feed(rtp, f"malformed {index}") == []
    assert pair.native.malformed == pair.python.malformed == len(malformed)
    assert pair.feed(good, "good")[0][4] is True
    pair.check_totals("malformed")


# Deliberate differences: the C path reads what it needs of a packet and keeps what
# aiortc's parsers refuse, so these are excluded from the randomized streams (their
# generators never make them) and pinned here.


def opus(seq: int, extension: bytes) -> bytes:
    """An Opus packet of `OPUS_SPEC`."""
    spec = OPUS_SPEC
    return bytes(
        Packet(spec.ssrc, spec.payload_type, seq, 960 * seq, False, b"op", extension=extension)
    )


@pytest.mark.parametrize(
    ("values", "profile", "level"),
    [
        # An element running past the block: aiortc raises (packet dropped); C reads the
        # elements before it and keeps the packet.
        (bytes(((AUDIO_LEVEL_ID << 4), 0x85, 0x23, 0)), 0xBEDE, 5),
        # ID 15 ends the block (RFC 8285 4.2): C stops there; aiortc reads on.
        (bytes((0xF0, 0, (AUDIO_LEVEL_ID << 4), 0x86)), 0xBEDE, None),
        # Two-byte header with appbits (0x100X, RFC 8285 4.3): aiortc knows only 0x1000.
        (bytes((AUDIO_LEVEL_ID, 1, 0x87, 0)), 0x1001, 7),
    ],
)
def test_header_extensions_aiortc_refuses_or_misreads(
    values: bytes, profile: int, level: int | None
) -> None:
    receiver = new_receiver()
    configure(receiver, [OPUS_SPEC])
    extension = struct.pack("!HH", profile, len(values) // 4) + values
    events = receiver.feed_plain(opus(1, extension))
    expected_level = [] if level is None else [(native_receive.LEVEL, "opus", level, True)]
    assert events == [*expected_level, (native_receive.FRAME, "opus", (b"op",), 0, True, 0, False)]
    assert PythonReceiver([OPUS_SPEC]).feed(opus(1, extension)) != normalize(events, [OPUS_SPEC])


def test_two_byte_audio_levels_match() -> None:
    pair = Pair([OPUS_SPEC])
    values = bytes((AUDIO_LEVEL_ID, 1, 0x7F, 0))
    extension = struct.pack("!HH", 0x1000, 1) + values
    assert [e[0] for e in pair.feed(opus(1, extension), "silence")] == [
        native_receive.LEVEL,
        native_receive.SILENCE,
    ]
    assert pair.feed(opus(2, level_extension(30, True)), "voice")[0][2:] == (30, True)


@pytest.mark.parametrize(
    ("spec", "payload"),
    [
        (VP8_SPEC, b"\x80"),  # X set, extension octet missing
        (VP8_SPEC, b"\x90\x80"),  # I set, picture id missing
        (H264_SPEC, b"\x1e\x01\x02"),  # NAL type 30: not supported by aiortc
        (H264_SPEC, b"\x41"),  # a NAL unit of one byte
    ],
)
def test_payloads_aiortc_cannot_depayload_stay_in_the_frame(
    spec: StreamSpec, payload: bytes
) -> None:
    # aiortc logs "RTP payload parsing failed" and drops the packet after its NACK and
    # statistics steps (the frame then waits for it, and is skipped); C keeps it as
    # received, in the frame's payloads (a forwarder does not depayload).
    receiver = new_receiver()
    configure(receiver, [spec])
    start = vp8(7, KEY_HEADER, 90, marker=False) if spec is VP8_SPEC else None
    if start is None:
        start = bytes(Packet(spec.ssrc, spec.payload_type, 7, 90, False, b"\x65\x88\x01"))
    assert receiver.feed_plain(start) == []
    bad = bytes(Packet(spec.ssrc, spec.payload_type, 8, 90, True, payload))
    (event,) = receiver.feed_plain(bad)
    assert event[0] == native_receive.FRAME and event[2][1] == payload
    with pytest.raises(ValueError):
        PythonReceiver([spec]).feed(bad)

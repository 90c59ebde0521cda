"""sfu._receive on real SRTP datagrams and sockets, and its API's errors.

A pylibsrtp session pair shares a key: the sending one protects, the `Receiver`
unprotects on the receiving one by address (``srtp_unprotect``). What comes out must be
what the Python path makes of the unprotected packets; what is not SRTP comes back as it
came; `drain` reads a real non-blocking UDP socket (IPv4, and IPv6 where there is one).
"""

from __future__ import annotations

import contextlib
import gc
import random
import socket
import struct
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest

from sfu import native_receive
from tests.sfu.receive_reference import (
    ALL_SPECS,
    OPUS_SPEC,
    VP8_SPEC,
    Packet,
    Perturbation,
    PythonReceiver,
    configure,
    interleave,
    new_receiver,
    normalize,
    require_native_receive,
    stream,
)

KEY = bytes(range(30))
STUN = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)  # a binding request's header
VP8_RTX = VP8_SPEC.rtx_ssrc or 0
VP8_RTX_PT = VP8_SPEC.rtx_payload_type or 0
RTCP_RR = struct.pack("!BBHL", 0x80, 201, 1, 0x4444_0001)  # an empty receiver report


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_native_receive()


def session_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """(sending, receiving) sessions with one key."""
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


def srtp_receiver(rx: pylibsrtp.Session) -> Any:
    """A `Receiver` unprotecting on `rx`, with every stream of `ALL_SPECS`."""
    receiver = new_receiver(session=rx)
    configure(receiver, ALL_SPECS)
    return receiver


# ------------------------------------------------------------------ SRTP


@pytest.mark.parametrize("seed", range(5))
def test_protected_streams_give_the_frames_of_the_python_path(seed: int) -> None:
    # No duplicates and nothing late by more than SRTP's replay window (128): libsrtp
    # refuses those (replay check) before either path could see them.
    rng = random.Random(seed)
    mild = Perturbation(duplicate=0, late=0, wrong_pt=0, unknown_ssrc=0, jump=0)
    packets = interleave(rng, [stream(rng, spec, 60, mild) for spec in ALL_SPECS])
    tx, rx = session_pair()
    receiver = srtp_receiver(rx)
    python = PythonReceiver(ALL_SPECS, max_wait=1e9)
    frames = 0
    for index, rtp in enumerate(packets):
        events = normalize(receiver.feed(tx.protect(rtp), ("192.0.2.1", 5000)), ALL_SPECS)
        assert events == python.feed(rtp), f"seed {seed}, packet {index}"
        frames += sum(event[0] == native_receive.FRAME for event in events)
    assert frames > 30
    assert receiver.datagrams == len(packets)
    assert receiver.unprotect_errors == 0
    for spec in ALL_SPECS:
        statistics = receiver.statistics(spec.ssrc)
        assert statistics is not None and statistics[:4] == python.statistics(spec.ssrc)


def test_a_tampered_datagram_counts_an_error_and_gives_nothing() -> None:
    tx, rx = session_pair()
    receiver = srtp_receiver(rx)
    first = bytes(Packet(OPUS_SPEC.ssrc, OPUS_SPEC.payload_type, 1, 960, False, b"one"))
    second = bytes(Packet(OPUS_SPEC.ssrc, OPUS_SPEC.payload_type, 2, 1920, False, b"two"))
    protected_first = tx.protect(first)
    assert [e[0] for e in receiver.feed(protected_first)] == [native_receive.FRAME]
    protected = bytearray(tx.protect(second))
    protected[14] ^= 0x01  # a payload byte: the authentication tag no longer matches
    assert receiver.feed(bytes(protected)) == []
    assert receiver.unprotect_errors == 1
    assert receiver.feed(protected_first) == []  # a replay: refused too
    assert receiver.unprotect_errors == 2
    assert receiver.statistics(OPUS_SPEC.ssrc) == (1, 1, 1, 0, 0)
    assert receiver.datagrams == 3


def test_srtcp_and_stun_come_back_unchanged() -> None:
    tx, rx = session_pair()
    receiver = srtp_receiver(rx)
    srtcp = tx.protect_rtcp(RTCP_RR)
    assert srtcp[1] == 201
    assert receiver.feed(srtcp) == [(native_receive.RTCP, srtcp)]
    for second_byte in (200, 208):
        rtcp = bytes((0x80, second_byte)) + srtcp[2:]
        assert receiver.feed(rtcp) == [(native_receive.RTCP, rtcp)]
    address = ("192.0.2.7", 40000)
    assert receiver.feed(STUN, address) == [(native_receive.OTHER, STUN, address)]
    assert receiver.feed(STUN) == [(native_receive.OTHER, STUN, None)]
    dtls = b"\x16\xfe\xfd" + bytes(10)
    assert receiver.feed(dtls, address) == [(native_receive.OTHER, dtls, address)]
    assert receiver.unprotect_errors == 0
    assert receiver.datagrams == 6


def test_feed_refuses_what_no_socket_read_could_hold() -> None:
    _, rx = session_pair()
    receiver = srtp_receiver(rx)
    with pytest.raises(ValueError):
        receiver.feed(bytes(2049))


# ------------------------------------------------------------------ drain


@contextlib.contextmanager
def udp_pair(
    family: socket.AddressFamily, host: str
) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sender, non-blocking receiver) UDP sockets on `host`, the sender connected."""
    receiver = socket.socket(family, socket.SOCK_DGRAM)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.bind((host, 0))
        receiver.setblocking(False)
        sender.bind((host, 0))
        sender.connect(receiver.getsockname())
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def audio_datagrams(tx: pylibsrtp.Session, count: int) -> list[bytes]:
    """`count` protected Opus packets whose payloads say their index."""
    spec = OPUS_SPEC
    return [
        tx.protect(bytes(Packet(spec.ssrc, spec.payload_type, i, 960 * i, False, b"%05d" % i)))
        for i in range(count)
    ]


def drain_all(receiver: Any, fd: int) -> list[list[Any]]:
    """`drain` until it returns nothing; the calls' results."""
    calls = []
    while events := receiver.drain(fd):
        calls.append(events)
    return calls


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_drain_reads_a_socket_in_order(family: socket.AddressFamily, host: str) -> None:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
    except OSError as error:
        pytest.skip(f"no {host} here: {error}")
    with udp_pair(family, host) as (sender, sock):
        tx, rx = session_pair()
        receiver = srtp_receiver(rx)
        assert receiver.drain(sock.fileno()) == []  # nothing there yet
        sent: list[tuple[str, bytes]] = []
        for index, datagram in enumerate(audio_datagrams(tx, 200)):
            if index % 50 == 10:
                stun = STUN + struct.pack("!H", index)
                sender.send(stun)
                sent.append(("stun", stun))
            sender.send(datagram)
            sent.append(("frame", b"%05d" % index))
        (events,) = drain_all(receiver, sock.fileno())
        address = sender.getsockname()
        expected = [
            (native_receive.OTHER, data, address)
            if what == "stun"
            else (native_receive.FRAME, "opus", (data,), 960 * int(data), True, 0, False)
            for what, data in sent
        ]
        assert events == expected
        assert receiver.datagrams == len(sent) == 204
        assert receiver.drain(sock.fileno()) == []


def test_drain_takes_at_most_256_datagrams_and_counts_truncated_ones() -> None:
    with udp_pair(socket.AF_INET, "127.0.0.1") as (sender, sock):
        tx, rx = session_pair()
        receiver = srtp_receiver(rx)
        datagrams = audio_datagrams(tx, 300)
        for datagram in datagrams[:150]:
            sender.send(datagram)
        sender.send(b"\x80" + bytes(3000))  # longer than a slot: cut by recvmmsg
        for datagram in datagrams[150:]:
            sender.send(datagram)
        calls = drain_all(receiver, sock.fileno())
        assert [len(events) for events in calls] == [255, 45]  # 256 datagrams, then 45
        payloads = [event[2][0] for events in calls for event in events]
        assert payloads == [b"%05d" % i for i in range(300)]
        assert receiver.malformed == 1
        assert receiver.datagrams == 300  # the cut one is not handled at all
        assert receiver.unprotect_errors == 0


# ------------------------------------------------------------------ the API


def test_streams_are_added_once_and_rtx_only_to_video() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC, OPUS_SPEC])
    with pytest.raises(ValueError):
        receiver.add_stream(VP8_SPEC.ssrc, native_receive.H264, 102, 90000, "again")
    with pytest.raises(ValueError):
        receiver.add_stream(VP8_RTX, native_receive.VP8, 98, 90000, "rtx's")
    with pytest.raises(ValueError):
        receiver.add_rtx(0x5555_0002, 0x5555_0001, 97)  # unknown media SSRC
    with pytest.raises(ValueError):
        receiver.add_rtx(0x5555_0002, OPUS_SPEC.ssrc, 97)  # audio has no RTX
    with pytest.raises(ValueError):
        receiver.add_rtx(0x5555_0002, VP8_RTX, 97)  # nor has RTX
    with pytest.raises(ValueError):
        receiver.add_rtx(OPUS_SPEC.ssrc, VP8_SPEC.ssrc, 97)  # taken
    assert sorted(receiver.ssrcs) == sorted([VP8_SPEC.ssrc, VP8_RTX, OPUS_SPEC.ssrc])


@pytest.mark.parametrize(
    "arguments",
    [
        (1 << 32, native_receive.VP8, 96, 90000),
        (-1, native_receive.VP8, 96, 90000),
        ((1 << 64) + 7, native_receive.VP8, 96, 90000),
        (7, -1, 96, 90000),
        (7, native_receive.H264 + 1, 96, 90000),
        (7, native_receive.VP8, 128, 90000),
        (7, native_receive.VP8, -1, 90000),
        (7, native_receive.AUDIO, 111, 0),
        (7, native_receive.AUDIO, 111, 1_000_001),
        (7, native_receive.AUDIO, 111, (1 << 64) + 48000),
    ],
)
def test_add_stream_refuses_arguments_out_of_range(arguments: tuple[int, ...]) -> None:
    receiver = new_receiver()
    with pytest.raises(ValueError):
        receiver.add_stream(*arguments, "token")
    assert receiver.ssrcs == []


@pytest.mark.parametrize(
    "arguments",
    [
        (1 << 32, 1, 97),
        (-1, 1, 97),
        ((1 << 64) + 9, 1, 97),
        (9, 1, 128),
        (9, 1, -1),
        (9, (1 << 32) + 1, 97),
    ],
)
def test_add_rtx_refuses_arguments_out_of_range(arguments: tuple[int, int, int]) -> None:
    receiver = new_receiver()
    receiver.add_stream(1, native_receive.VP8, 96, 90000, "video")
    with pytest.raises(ValueError):
        receiver.add_rtx(*arguments)
    assert receiver.ssrcs == [1]


def test_ssrcs_out_of_range_name_no_stream() -> None:
    receiver = new_receiver()
    receiver.add_stream(1, native_receive.VP8, 96, 90000, "video")
    for ssrc in ((1 << 32) + 1, -1):
        with pytest.raises(ValueError):
            receiver.remove(ssrc)
        with pytest.raises(ValueError):
            receiver.statistics(ssrc)
        with pytest.raises(ValueError):
            receiver.counts(ssrc)
    assert receiver.ssrcs == [1]


def test_remove_stops_routing() -> None:
    receiver = new_receiver()
    configure(receiver, [VP8_SPEC, OPUS_SPEC])
    audio = bytes(Packet(OPUS_SPEC.ssrc, OPUS_SPEC.payload_type, 1, 960, False, b"op"))
    rtx = bytes(Packet(VP8_RTX, VP8_RTX_PT, 1, 0, True, b"\x00\x05\x10"))
    assert receiver.feed_plain(audio)[0][0] == native_receive.FRAME
    assert receiver.counts(OPUS_SPEC.ssrc)["frames"] == 1
    assert receiver.remove(OPUS_SPEC.ssrc) is True
    assert receiver.remove(OPUS_SPEC.ssrc) is False
    assert receiver.feed_plain(audio) == [(native_receive.UNKNOWN, audio)]
    assert receiver.statistics(OPUS_SPEC.ssrc) is None
    assert receiver.counts(OPUS_SPEC.ssrc) is None
    # Removing a video stream removes the RTX stream that retransmits it.
    assert receiver.feed_plain(rtx)[0][0] == native_receive.FRAME  # a one-packet frame
    assert receiver.statistics(VP8_RTX)[:4] == (1, 1, 1, 0)
    assert receiver.remove(VP8_SPEC.ssrc) is True
    assert receiver.ssrcs == []
    assert receiver.feed_plain(rtx) == [(native_receive.UNKNOWN, rtx)]
    assert receiver.remove(VP8_RTX) is False


class Token:
    """A stream's token: weak-referenceable, so its release can be seen."""


def test_tokens_held_payloads_and_the_session_are_released() -> None:
    receiver = new_receiver()
    token = Token()
    alive = weakref.ref(token)
    base = sys.getrefcount(token)
    receiver.add_stream(1, native_receive.VP8, 96, 90000, token)
    receiver.add_rtx(2, 1, 97)
    assert sys.getrefcount(token) == base + 2  # the stream's and its RTX's
    payload = b"\x10" + bytes(40)  # a frame start without its marker: held
    rtp = bytes(Packet(1, 96, 5, 0, False, payload))
    assert receiver.feed_plain(rtp) == []
    assert receiver.remove(2) is True
    assert sys.getrefcount(token) == base + 1
    assert receiver.remove(1) is True
    assert sys.getrefcount(token) == base
    del token
    assert alive() is None

    tx, rx = session_pair()
    session_alive = weakref.ref(rx)
    receiver = srtp_receiver(rx)
    video = Token()
    video_alive = weakref.ref(video)
    receiver.add_stream(3, native_receive.VP8, 96, 90000, video)
    receiver.feed(tx.protect(rtp.replace(b"\x00\x00\x00\x01", b"\x00\x00\x00\x03", 1)))
    del rx, video
    assert session_alive() is not None and video_alive() is not None  # held by receiver
    del receiver
    gc.collect()
    assert session_alive() is None and video_alive() is None

"""sfu._fanout (through sfu.native_send): real SRTP sessions, real UDP sockets on loopback.

The datagrams are unprotected by a receiving session and checked field by field, and
compared byte for byte with what the Python send path (`lean_protect` on a session with
the same key) produces for the same packets.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pylibsrtp
import pytest

from sfu import native_send
from sfu.aiortc_adapter import lean_protect, srtp_pointers
from tests.native_extensions import require_extension

MID_EXTENSION = b"\xbe\xde\x00\x01\x10" + b"0" + b"\x00\x00"  # RFC 8285, id 1, MID "0"
PT = 96
SSRC = 0x8765_4321
TIMESTAMP = 0xFFFF_FFF0
PROTECT_LIMIT = 2048 - 12 - 144  # longest payload without an extension


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_extension(native_send.AVAILABLE, "sfu._fanout")


def outbound(key: bytes) -> pylibsrtp.Session:
    return pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    )


@dataclass
class Link:
    """A non-blocking sender socket, a receiver, and SRTP sessions sharing one key."""

    sender: socket.socket
    receiver: socket.socket
    address: bytes
    session: pylibsrtp.Session
    inbound: pylibsrtp.Session
    reference: pylibsrtp.Session  # fed the same packets through the Python path

    def send(
        self,
        payloads: Sequence[bytes],
        seq: int,
        extension: bytes = b"",
        gso: bool = True,
        marker_on_last: bool = True,
    ) -> int:
        return send(
            self,
            first_byte=0x90 if extension else 0x80,
            sequence_number=seq,
            extension=extension,
            payloads=list(payloads),
            marker_on_last=marker_on_last,
            gso=gso,
        )

    def receive(self, count: int) -> list[bytes]:
        """`count` datagrams, and then no more."""
        self.receiver.settimeout(2.0)
        datagrams = [self.receiver.recv(65536) for _ in range(count)]
        self.receiver.settimeout(0.05)
        with pytest.raises(TimeoutError):
            extra = self.receiver.recv(65536)
            pytest.fail(f"unexpected datagram of {len(extra)} bytes")
        return datagrams


def send(link: Link, **changes: Any) -> int:
    """`native_send.send_frame` with these arguments changed."""
    protect, srtp = srtp_pointers(link.session)
    arguments: dict[str, Any] = {
        "fd": link.sender.fileno(),
        "address": link.address,
        "protect": protect,
        "session": srtp,
        "first_byte": 0x80,
        "payload_type": PT,
        "sequence_number": 1,
        "timestamp": TIMESTAMP,
        "ssrc": SSRC,
        "extension": b"",
        "payloads": frame([100, 100, 50]),
        "marker_on_last": True,
        "gso": True,
    }
    assert changes.keys() <= arguments.keys()
    arguments.update(changes)
    return native_send.send_frame(*arguments.values())


@contextlib.contextmanager
def open_link(family: socket.AddressFamily, host: str) -> Iterator[Link]:
    key = os.urandom(30)
    receiver = socket.socket(family, socket.SOCK_DGRAM)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    try:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        receiver.bind((host, 0))
        sender.setblocking(False)
        inbound = pylibsrtp.Session(
            pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
        )
        address = native_send.sockaddr(host, receiver.getsockname()[1])
        yield Link(sender, receiver, address, outbound(key), inbound, outbound(key))
    finally:
        sender.close()
        receiver.close()


@pytest.fixture
def link() -> Iterator[Link]:
    with open_link(socket.AF_INET, "127.0.0.1") as link:
        yield link


def frame(sizes: Sequence[int]) -> list[bytes]:
    return [bytes([i % 251]) * size for i, size in enumerate(sizes)]


def python_path(
    link: Link,
    payloads: Sequence[bytes],
    seq: int,
    extension: bytes,
    marker_on_last: bool = True,
) -> list[bytes]:
    """The datagrams of DirectRtpSender.send_frame for the same frame."""
    protect = lean_protect(link.reference)
    first_byte = 0x90 if extension else 0x80
    last = len(payloads) - 1
    return [
        protect(
            struct.pack(
                "!BBHII",
                first_byte,
                (0x80 if marker_on_last and i == last else 0) | PT,
                (seq + i) & 0xFFFF,
                TIMESTAMP,
                SSRC,
            )
            + extension
            + payload
        )
        for i, payload in enumerate(payloads)
    ]


def check_packets(
    link: Link,
    datagrams: list[bytes],
    payloads: Sequence[bytes],
    seq: int,
    extension: bytes,
    marker_on_last: bool = True,
) -> None:
    assert len(datagrams) == len(payloads)
    for i, (datagram, payload) in enumerate(zip(datagrams, payloads, strict=True)):
        packet = link.inbound.unprotect(datagram)
        first, second, number, timestamp, ssrc = struct.unpack_from("!BBHII", packet)
        assert first == (0x90 if extension else 0x80)  # version 2, X bit with an extension
        assert second >> 7 == (marker_on_last and i == len(payloads) - 1)
        assert second & 0x7F == PT
        assert number == (seq + i) & 0xFFFF
        assert (timestamp, ssrc) == (TIMESTAMP, SSRC)
        assert packet[12 : 12 + len(extension)] == extension
        assert packet[12 + len(extension) :] == payload


FRAMES = {
    "1": [1100],
    "3 uniform": [1100, 1100, 700],
    "3 mixed": [300, 1100, 900],
    "2 longer last": [800, 900],  # one GSO send would split the last packet in two
    "54: one-packet GSO chunk": [1100] * 54,  # 53 segments of 1130 bytes fit in 60 kB
    "70 uniform": [1100] * 69 + [17],
    "70 mixed": [100 + 13 * i for i in range(70)],
}


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "sendto"])
@pytest.mark.parametrize("extension", [b"", MID_EXTENSION], ids=["plain", "mid"])
@pytest.mark.parametrize("sizes", FRAMES.values(), ids=FRAMES.keys())
def test_frames_arrive_intact_and_match_the_python_path(
    link: Link, sizes: list[int], extension: bytes, gso: bool
) -> None:
    payloads = frame(sizes)
    seq = 65_500  # the 70-packet frames wrap over 65535
    for repeat in range(2):
        start = (seq + repeat * len(payloads)) & 0xFFFF
        assert link.send(payloads, start, extension, gso) == sum(sizes)
        datagrams = link.receive(len(payloads))
        check_packets(link, datagrams, payloads, start, extension)
        assert datagrams == python_path(link, payloads, start, extension)


def test_without_marker(link: Link) -> None:
    payloads = frame([500, 500, 200])
    link.send(payloads, 7, marker_on_last=False)
    check_packets(link, link.receive(3), payloads, 7, b"", marker_on_last=False)


def test_empty_frame_sends_nothing(link: Link) -> None:
    assert link.send([], 1) == 0
    assert link.receive(0) == []


def test_longest_payload(link: Link) -> None:
    payloads = frame([PROTECT_LIMIT, PROTECT_LIMIT, 5])
    link.send(payloads, 1)
    datagrams = link.receive(3)
    # pylibsrtp cannot unprotect more than 1500 bytes: the RTP header is in the clear.
    tag = 10  # AES_CM_128_HMAC_SHA1_80
    assert [len(datagram) for datagram in datagrams] == [12 + PROTECT_LIMIT + tag] * 2 + [
        12 + 5 + tag
    ]
    for i, datagram in enumerate(datagrams):
        assert datagram[:12] == struct.pack(
            "!BBHII", 0x80, (0x80 if i == 2 else 0) | PT, 1 + i, TIMESTAMP, SSRC
        )
    check_packets(link, datagrams[2:], payloads[2:], 3, b"")
    with pytest.raises(ValueError, match="too long"):
        link.send(frame([PROTECT_LIMIT - len(MID_EXTENSION) + 1]), 4, MID_EXTENSION)


@pytest.mark.parametrize("pt", [-1, 128])
def test_bad_payload_type(link: Link, pt: int) -> None:
    with pytest.raises(ValueError, match="payload_type"):
        send(link, payload_type=pt)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        (
            {"payloads": [b"x", b"x" * (PROTECT_LIMIT + 1)]},
            ValueError,
            r"payloads\[1\] is too long",
        ),
        ({"payloads": [b"x", bytearray(b"x")]}, TypeError, r"payloads\[1\] is not bytes"),
        ({"payloads": iter([b"x"])}, TypeError, "list or a tuple"),
        ({"first_byte": 256}, ValueError, "first_byte"),
        ({"sequence_number": 65_536}, ValueError, "sequence_number"),
        ({"timestamp": -1}, ValueError, "timestamp"),
        ({"ssrc": 1 << 32}, ValueError, "ssrc"),
        ({"ssrc": 1 << 80}, ValueError, "ssrc"),
        ({"ssrc": "1"}, TypeError, "ssrc"),
        ({"address": b"\x02\x00" + bytes(6)}, ValueError, "sockaddr"),
        ({"address": "127.0.0.1"}, TypeError, "address"),
        ({"session": 0}, ValueError, "null pointer"),
    ],
)
def test_bad_arguments_send_nothing(
    link: Link, changes: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        send(link, **changes)
    assert link.receive(0) == []


def test_protect_failure_is_a_value_error(link: Link) -> None:
    # A session that knows one SSRC only: libsrtp has no stream for any other.
    link.session = pylibsrtp.Session(
        pylibsrtp.Policy(
            key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_SPECIFIC, ssrc_value=SSRC + 1
        )
    )
    with pytest.raises(ValueError, match=r"srtp_protect failed: \d+"):
        send(link)


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "sendto"])
def test_closed_descriptor_is_an_os_error(link: Link, gso: bool) -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = closed.fileno()
    closed.close()
    with pytest.raises(OSError) as caught:
        send(link, fd=fd, gso=gso)
    assert caught.value.errno == errno.EBADF


@pytest.mark.parametrize(
    ("host", "port"),
    [("example.org", 1), ("1.2.3", 1), ("::zz", 1), ("127.0.0.1\x00", 1), ("127.0.0.1", 65_536)],
)
def test_bad_socket_address(host: str, port: int) -> None:
    with pytest.raises(ValueError):
        native_send.sockaddr(host, port)


def test_socket_address_layout() -> None:
    assert native_send.sockaddr("10.1.2.3", 0x1234) == struct.pack(
        "=H", socket.AF_INET
    ) + bytes.fromhex("1234 0a010203") + bytes(8)
    assert native_send.sockaddr("::1", 0x1234) == struct.pack(
        "=H", socket.AF_INET6
    ) + bytes.fromhex("1234") + bytes(4 + 15) + b"\x01" + bytes(4)


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("Python was built without IPv6")
    with contextlib.ExitStack() as stack:
        try:
            link = stack.enter_context(open_link(socket.AF_INET6, "::1"))
        except OSError as exc:
            pytest.skip(f"cannot bind ::1: {exc}")
        payloads = frame([1100, 1100, 1100, 40])
        for seq, gso in ((9, True), (13, False)):
            link.send(payloads, seq, MID_EXTENSION, gso)
            datagrams = link.receive(4)
            check_packets(link, datagrams, payloads, seq, MID_EXTENSION)
            assert datagrams == python_path(link, payloads, seq, MID_EXTENSION)

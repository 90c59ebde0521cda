"""The C reader of a subscribe connection's control traffic (`native_receive.
ControlReader`), with real SRTCP: what it unprotects, what it hands back to aioice, and
the standalone REMBs it drops unread when they come faster than `remb_interval`."""

from __future__ import annotations

import math
import socket
import struct
import time
from collections.abc import Iterator

import pylibsrtp
import pytest

from sfu import native_receive, refused_packet_totals
from sfu.aiortc_adapter.testing import srtp_unprotect_rtcp_pointers
from tests.native_extensions import require_extension

KEY = bytes(range(30))
SENDER_SSRC = 0x1111_2222
MEDIA_SSRC = 0x3333_4444


@pytest.fixture(autouse=True)
def _extension_built() -> None:
    require_extension(native_receive.AVAILABLE, "sfu._receive")


def sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


def reader(rx: pylibsrtp.Session, remb_interval: float = 0.1) -> native_receive.ControlReader:
    unprotect, srtp = srtp_unprotect_rtcp_pointers(rx)
    return native_receive.ControlReader(unprotect, srtp, rx, remb_interval=remb_interval)


def remb(bitrate_exponent: int = 10, mantissa: int = 1000) -> bytes:
    """A standalone REMB (RFC draft-alvestrand-rmcat-remb) for MEDIA_SSRC."""
    fci = b"REMB" + bytes([1, (bitrate_exponent << 2) | (mantissa >> 16)])
    fci += struct.pack("!HI", mantissa & 0xFFFF, MEDIA_SSRC)
    body = struct.pack("!II", SENDER_SSRC, 0) + fci
    return struct.pack("!BBH", 0x80 | 15, 206, len(body) // 4) + body


def receiver_report() -> bytes:
    block = struct.pack("!IIIIII", MEDIA_SSRC, 0, 100, 0, 0, 0)
    return struct.pack("!BBHI", 0x81, 201, 7, SENDER_SSRC) + block


def test_srtcp_comes_back_unprotected_and_stun_as_it_came() -> None:
    tx, rx = sessions()
    control = reader(rx)
    report = receiver_report()
    assert control.feed(tx.protect_rtcp(report)) == [(native_receive.RTCP, report)]
    stun = b"\x00\x01\x00\x00" + bytes(16)
    assert control.feed(stun) == [(native_receive.OTHER, stun, None)]
    assert control.counts()["datagrams"] == 2


def test_a_remb_flood_is_thinned_to_one_per_interval() -> None:
    tx, rx = sessions()
    control = reader(rx, remb_interval=0.05)
    first = remb(mantissa=1000)
    assert control.feed(tx.protect_rtcp(first)) == [(native_receive.RTCP, first)]
    for _ in range(20):
        assert control.feed(tx.protect_rtcp(remb(mantissa=900))) == []
    assert control.counts()["rembs_dropped"] == 20
    time.sleep(0.06)
    later = remb(mantissa=800)
    assert control.feed(tx.protect_rtcp(later)) == [(native_receive.RTCP, later)]
    # Receiver reports (here with a REMB in the same compound, as Chromium sends them)
    # are never dropped.
    compound = receiver_report() + remb(mantissa=700)
    for _ in range(3):
        assert control.feed(tx.protect_rtcp(compound)) == [(native_receive.RTCP, compound)]
    assert control.counts()["rembs_dropped"] == 20
    assert control.counts()["unprotect_errors"] == 0


def test_no_interval_drops_nothing_and_tampering_is_counted() -> None:
    tx, rx = sessions()
    control = reader(rx, remb_interval=0.0)
    packets = [remb(mantissa=m) for m in (1000, 999, 998)]
    for packet in packets:
        assert control.feed(tx.protect_rtcp(packet)) == [(native_receive.RTCP, packet)]
    tampered = bytearray(tx.protect_rtcp(receiver_report()))
    tampered[12] ^= 0xFF
    assert control.feed(bytes(tampered)) == []
    assert control.counts() == {
        "datagrams": 4,
        "rembs_dropped": 0,
        "unprotect_errors": 1,
        "rtcp_dropped": 0,
        "other_dropped": 0,
    }
    with pytest.raises(ValueError, match="remb_interval"):
        reader(rx, remb_interval=-1)


def test_a_subscriber_flooding_rtcp_or_stun_is_cut_to_its_budget() -> None:
    # 400 RTCP and 50 other datagrams a second after bursts of 800 and 100 (control.c).
    tx, rx = sessions()
    control = reader(rx, remb_interval=0.0)
    before = refused_packet_totals()
    start = time.monotonic()
    passed = sum(len(control.feed(tx.protect_rtcp(receiver_report()))) for _ in range(1200))
    refill = math.ceil((time.monotonic() - start) * 400)
    assert 800 <= passed <= 800 + refill
    stun = b"\x00\x01\x00\x00" + bytes(16)
    start = time.monotonic()
    others = sum(len(control.feed(stun)) for _ in range(300))
    assert 100 <= others <= 100 + math.ceil((time.monotonic() - start) * 50)
    counts = control.counts()
    assert counts["rtcp_dropped"] == 1200 - passed and counts["other_dropped"] == 300 - others
    after = refused_packet_totals()
    assert after["subscriber_rtcp_flood"] - before["subscriber_rtcp_flood"] == 1200 - passed
    assert after["subscriber_control_flood"] - before["subscriber_control_flood"] == 300 - others


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client.bind(("127.0.0.1", 0))
    server.setblocking(False)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def test_drain_reads_a_socket_in_one_call(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = udp_pair
    tx, rx = sessions()
    control = reader(rx)
    stun = b"\x00\x01\x00\x00" + bytes(16)
    report = receiver_report()
    for datagram in (tx.protect_rtcp(report), stun, tx.protect_rtcp(remb()), stun):
        client.sendto(datagram, server.getsockname())
    for _ in range(10):  # loopback delivers at once; give a loaded machine a moment
        time.sleep(0.01)
        events = control.drain(server.fileno())
        if events:
            break
    address = client.getsockname()
    assert events == [
        (native_receive.RTCP, report),
        (native_receive.OTHER, stun, address),
        (native_receive.RTCP, remb()),
        (native_receive.OTHER, stun, address),
    ]
    assert control.drain(server.fileno()) == []

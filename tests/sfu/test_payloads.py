"""`RtpPayloads`: computed once per frame for every subscriber's send."""

import socket
import sys

import pytest

from sfu.payloads import RtpPayloads


def test_size_and_whether_gso_can_carry_the_frame() -> None:
    frame = RtpPayloads([b"a" * 1100, b"b" * 1100, b"c" * 300])
    assert (len(frame), frame.size, frame.uniform) == (3, 2500, True)
    assert RtpPayloads([b"a" * 1100, b"b" * 1000, b"c" * 300]).uniform is False
    assert RtpPayloads([b"a" * 20, b"b" * 10]).uniform is True  # only the last differs
    assert RtpPayloads([b"a" * 20, b"b" * 20]).uniform is True
    # A longer last packet (an H.264 STAP-A, then the IDR slice) would be split.
    assert RtpPayloads([b"a" * 10, b"b" * 20]).uniform is False
    assert RtpPayloads([b"opus"]).uniform is False  # one packet: a plain sendto
    assert RtpPayloads([]).size == 0


@pytest.mark.skipif(sys.platform != "linux", reason="UDP GSO is Linux-only")
@pytest.mark.parametrize("sizes", [[800, 800, 300], [800, 800], [800, 900], [300, 800, 800]])
def test_what_uniform_promises_is_what_the_kernel_does_with_one_segmented_send(
    sizes: list[int],
) -> None:
    payloads = [bytes([i]) * size for i, size in enumerate(sizes)]
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(1)
        segment = socket.SOL_UDP, 103, len(payloads[0]).to_bytes(2, sys.byteorder)
        sender.sendmsg([b"".join(payloads)], [segment], 0, receiver.getsockname())
        received = [receiver.recv(4096)]
        receiver.settimeout(0.2)
        while True:
            try:
                received.append(receiver.recv(4096))
            except TimeoutError:
                break
    finally:
        sender.close()
        receiver.close()
    assert RtpPayloads(payloads).uniform == (received == payloads)

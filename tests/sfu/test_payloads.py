"""`RtpPayloads`: computed once per frame for every subscriber's send."""

from sfu.payloads import RtpPayloads


def test_size_and_whether_gso_can_carry_the_frame() -> None:
    frame = RtpPayloads([b"a" * 1100, b"b" * 1100, b"c" * 300])
    assert (len(frame), frame.size, frame.uniform) == (3, 2500, True)
    assert RtpPayloads([b"a" * 1100, b"b" * 1000, b"c" * 300]).uniform is False
    assert RtpPayloads([b"a" * 10, b"b" * 20]).uniform is True  # only the last differs
    assert RtpPayloads([b"opus"]).uniform is False  # one packet: a plain sendto
    assert RtpPayloads([]).size == 0

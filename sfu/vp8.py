"""The VP8 RTP payload descriptor (RFC 7741 4.2): what forwarding reads and rewrites.

The server reads the temporal layer of each frame the publisher sends (Chromium's
``scalabilityMode: "L1T3"``) to thin frames per subscriber, and rewrites the picture id
of what it sends so each subscriber sees consecutive ids whatever frames it skipped or
layers it switched: a receiver that sees a gap in picture ids waits for the missing
frame (WebRTC's frame reference finder refers each frame to id - 1) and freezes.

    byte 0: X R N S R PID(3)
    X:      I L T K RSV(4)
    I:      M PictureID(7 or 15 bits)
    L:      TL0PICIDX
    T|K:    TID(2) Y KEYIDX(5)
"""

from __future__ import annotations

PICTURE_ID_MASK = 0x7FFF
NO_TEMPORAL = (0, False)


def temporal_layer(payload: bytes) -> tuple[int, bool]:
    """``(TID, Y)`` of a packet: its temporal layer (0 when the descriptor has none) and
    whether it is a layer sync frame (it depends on temporal layer 0 only)."""
    if len(payload) < 2 or not payload[0] & 0x80:
        return NO_TEMPORAL
    extension = payload[1]
    if not extension & 0x20:  # T
        return NO_TEMPORAL
    pos = 2
    if extension & 0x80:  # I
        if len(payload) <= pos:
            return NO_TEMPORAL
        pos += 2 if payload[pos] & 0x80 else 1
    if extension & 0x40:  # L
        pos += 1
    if len(payload) <= pos:
        return NO_TEMPORAL
    octet = payload[pos]
    return octet >> 6, bool(octet & 0x20)


def picture_id(payload: bytes) -> int | None:
    """The packet's picture id (7- or 15-bit), None when it carries none."""
    if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return None
    first = payload[2]
    if first & 0x80:
        if len(payload) < 4:
            return None
        return ((first & 0x7F) << 8) | payload[3]
    return first


def with_picture_id(payload: bytes, new_id: int) -> bytes:
    """`payload` with its picture id replaced by `new_id`, written in 15 bits (a 7-bit
    one grows by a byte). The payload must carry a picture id."""
    new_id &= PICTURE_ID_MASK
    high, low = 0x80 | (new_id >> 8), new_id & 0xFF
    rest = 4 if payload[2] & 0x80 else 3
    return b"".join((payload[:2], bytes((high, low)), payload[rest:]))

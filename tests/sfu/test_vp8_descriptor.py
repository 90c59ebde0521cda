"""The VP8 payload descriptor fields forwarding reads and rewrites (pure logic)."""

from __future__ import annotations

from aiortc.codecs.vpx import VpxPayloadDescriptor

from sfu import vp8


def descriptor(**fields: object) -> bytes:
    return bytes(VpxPayloadDescriptor(partition_start=1, partition_id=0, **fields))  # type: ignore[arg-type]


def test_the_temporal_layer_and_sync_bit_are_read_past_picture_id_and_tl0picidx() -> None:
    assert vp8.temporal_layer(descriptor(picture_id=300, tl0picidx=7, tid=(2, 0)) + b"x") == (
        2,
        False,
    )
    assert vp8.temporal_layer(descriptor(picture_id=5, tid=(1, 1)) + b"x") == (1, True)
    assert vp8.temporal_layer(descriptor(tl0picidx=1, tid=(3, 0)) + b"x") == (3, False)
    # No T bit, no extension, too short: layer 0.
    assert vp8.temporal_layer(descriptor(picture_id=9) + b"x") == (0, False)
    assert vp8.temporal_layer(bytes([0x10]) + b"x") == (0, False)
    assert vp8.temporal_layer(bytes([0x90, 0xA0])) == (0, False)


def test_picture_ids_of_7_and_15_bits() -> None:
    assert vp8.picture_id(descriptor(picture_id=0x1234, tid=(0, 0)) + b"x") == 0x1234
    assert vp8.picture_id(bytes([0x90, 0x80, 0x05]) + b"x") == 5  # 7-bit form
    assert vp8.picture_id(descriptor(tl0picidx=3) + b"x") is None
    assert vp8.picture_id(bytes([0x10]) + b"x") is None


def test_a_rewritten_picture_id_keeps_everything_else() -> None:
    original = descriptor(picture_id=100, tl0picidx=9, tid=(2, 1)) + b"frame data"
    rewritten = vp8.with_picture_id(original, 0x7FFF + 3)  # wraps at 15 bits
    assert vp8.picture_id(rewritten) == 2
    assert len(rewritten) == len(original)
    parsed, data = VpxPayloadDescriptor.parse(rewritten)
    assert (parsed.tl0picidx, parsed.tid, data) == (9, (2, 1), b"frame data")
    short = bytes([0x90, 0x80, 0x05]) + b"data"  # a 7-bit id grows to 15 bits
    longer = vp8.with_picture_id(short, 4000)
    assert vp8.picture_id(longer) == 4000 and longer.endswith(b"data")
    assert len(longer) == len(short) + 1

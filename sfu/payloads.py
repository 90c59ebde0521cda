"""A frame's RTP payloads, packetized once for all the consumers that send it."""

from __future__ import annotations

from collections.abc import Sequence


class RtpPayloads:
    """The payloads of one frame's RTP packets, in order, and what every subscriber's
    send would otherwise recompute: their total size and whether all but the last have
    the same size and the last is no longer (then UDP GSO sends the frame's packets in
    one call)."""

    __slots__ = ("items", "size", "uniform")

    def __init__(self, items: Sequence[bytes]) -> None:
        # a list or tuple: what the native send path takes
        self.items: list[bytes] | tuple[bytes, ...] = (
            items if isinstance(items, list | tuple) else tuple(items)
        )
        self.size = sum(map(len, items))
        first = len(items[0]) if items else 0
        # A last packet longer than the others would be cut at the segment size.
        self.uniform = (
            len(items) > 1
            and all(len(item) == first for item in items[:-1])
            and len(items[-1]) <= first
        )

    def __len__(self) -> int:
        return len(self.items)

"""One encoded frame as consumers get it: shared by all of them, never copied."""

from __future__ import annotations

from typing import TYPE_CHECKING

import av
from av.stream import Stream

from sfu import vp8
from sfu.payloads import RtpPayloads

if TYPE_CHECKING:
    from sfu.producer import Producer


class MediaFrame:
    """One encoded frame as handed to consumers: shared by all of them, never copied.

    `payloads` are the frame's RTP payloads, packetized once for every consumer on the
    direct send path (`None` on the aiortc path, where each sender packetizes `packet`).
    `temporal` is its temporal layer (0 without any); `picture_id` the VP8 picture id in
    `payloads` (None for other codecs and on the aiortc path).
    """

    __slots__ = (
        "_packet",
        "_renumbered",
        "keyframe",
        "payloads",
        "picture_id",
        "producer",
        "pts",
        "route_check",
        "temporal",
    )

    def __init__(
        self,
        packet: av.Packet[Stream] | None,
        pts: int,
        keyframe: bool,
        payloads: RtpPayloads | None = None,
        producer: Producer | None = None,
        temporal: int = 0,
    ) -> None:
        self._packet = packet
        self.pts = pts
        self.keyframe = keyframe
        self.payloads = payloads
        self.producer = producer
        """The layer it comes from (a consumer of a layered source forwards one)."""
        self.temporal = temporal
        self.picture_id: int | None = None
        self.route_check = False
        """The C fan-out left this frame to Python for every member's route check."""
        if payloads is not None and producer is not None and producer.codec.name == "VP8":
            self.picture_id = vp8.picture_id(payloads.items[0])
        self._renumbered: dict[int, RtpPayloads] | None = None

    @property
    def packet(self) -> av.Packet[Stream]:
        """The frame as one `av.Packet` (depayloaded: what a recorder or aiortc's
        sender takes). A frame received natively carries its payloads as they arrived
        and is depayloaded on first use."""
        packet = self._packet
        if packet is None:
            assert self.payloads is not None and self.producer is not None
            packet = self._packet = self.producer._depayloaded(self.payloads, self.pts)
        return packet

    def payloads_with_picture_id(self, new_id: int) -> RtpPayloads:
        """`payloads` carrying picture id `new_id` (made once per id, for every consumer
        that needs the same one)."""
        assert self.payloads is not None
        cache = self._renumbered
        if cache is None:
            cache = self._renumbered = {}
        payloads = cache.get(new_id)
        if payloads is None:
            payloads = cache[new_id] = RtpPayloads(
                [vp8.with_picture_id(item, new_id) for item in self.payloads.items]
            )
        return payloads

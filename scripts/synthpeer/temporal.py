"""Publishing VP8 in temporal layers from an aiortc client, the way Chromium's ``L1T3``
labels its frames: temporal layers 0, 2, 1, 2 in turn, each packet's payload descriptor
carrying TID, the layer-sync bit and TL0PICIDX (RFC 7741).

aiortc's encoder cannot make temporal layers (it does not set libvpx's per-frame
reference flags), so the clip sent this way is all keyframes (`vp8_clip(...,
keyframes_only=True)`): any subset of its frames decodes, which is what a forwarder
that thins upper layers must be checked against. Use with
`sfu.aiortc_adapter.testing.use_packer` on the sender.
"""

from __future__ import annotations

import random

from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import VpxPayloadDescriptor
from av.frame import Frame
from av.packet import Packet
from av.stream import Stream

from scripts.synthpeer.media import VIDEO_CLOCK_RATE

L1T3_PATTERN = (0, 2, 1, 2)
"""The temporal layer of each frame in turn (WebRTC's three-layer VP8 pattern)."""
_PAYLOAD_MAX = 1200


class TemporalLayersPacker(Encoder):
    """Packetizes pre-encoded VP8 frames, labelling them with `pattern`'s temporal layers.

    `temporal_layers` lists the label of every frame packed, in order."""

    def __init__(self, pattern: tuple[int, ...] = L1T3_PATTERN) -> None:
        self.pattern = pattern
        self.picture_id = random.randint(0, 0x7FFF)
        self.tl0_index = random.randint(0, 0xFF)
        self._frame = 0
        self.temporal_layers: list[int] = []

    def encode(self, frame: Frame, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("TemporalLayersPacker packs pre-encoded frames; it does not encode")

    def pack(self, packet: Packet[Stream]) -> tuple[list[bytes], int]:
        temporal = self.pattern[self._frame % len(self.pattern)]
        self._frame += 1
        if temporal == 0:
            self.tl0_index = (self.tl0_index + 1) & 0xFF
        self.temporal_layers.append(temporal)
        # Every upper-layer frame of this pattern refers to layer 0 only or to the frame
        # of layer 1 after it: a layer-1 frame, and the first layer-2 one, are syncs.
        layer_sync = temporal == 1 or (temporal == 2 and self._frame % len(self.pattern) == 2)
        descriptor = VpxPayloadDescriptor(
            partition_start=1,
            partition_id=0,
            picture_id=self.picture_id,
            tl0picidx=self.tl0_index,
            tid=(temporal, int(layer_sync)),
        )
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        data = bytes(packet)
        payloads = []
        for pos in range(0, len(data), _PAYLOAD_MAX):
            payloads.append(bytes(descriptor) + data[pos : pos + _PAYLOAD_MAX])
            descriptor.partition_start = 0
        assert packet.pts is not None and packet.time_base is not None
        timestamp = int(packet.pts * packet.time_base * VIDEO_CLOCK_RATE)
        return payloads, timestamp

"""Which negotiated m-section an SSRC first seen on a publish connection belongs to,
for the native receive path (`publish_receive`): stricter than aiortc's `RtpRouter`,
which adopts any SSRC by payload type when one receiver has that payload type, and
cannot route RTX when several m-sections share the RTX payload type."""

from __future__ import annotations

from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from sfu.aiortc_adapter.internals import (
    ROUTER_MID_TABLE,
    ROUTER_RECEIVERS,
    ROUTER_SSRC_TABLE,
    RX_CODECS,
    RX_RTX_SSRC,
)

Refusal = str
"""Why a packet belongs to no negotiated track: a reason of `Receiver.refuse`."""


class SsrcRouting:
    """The SSRCs one publish connection's routing decided (one per DTLS transport)."""

    __slots__ = ("_learned", "_routed")

    def __init__(self) -> None:
        self._learned: set[int] = set()  # adopted by payload type: the offer named none
        self._routed: set[int] = set()  # given a receiver here

    def receiver_of(self, router: Any, packet: RtpPacket) -> tuple[RTCRtpReceiver, Any] | Refusal:
        """(receiver, codec) of `packet`, or why it has none: ``"unnegotiated_mid"``
        (its mid extension names no m-section), ``"unknown_ssrc"`` (no m-section
        negotiated its SSRC with its payload type), ``"unknown_codec"``."""
        mid = packet.extensions.mid
        if mid is not None and mid not in getattr(router, ROUTER_MID_TABLE):
            return "unnegotiated_mid"
        ssrc_table = getattr(router, ROUTER_SSRC_TABLE)
        named = ssrc_table.get(packet.ssrc)
        rtp_receiver = router.route_rtp(packet)
        if packet.ssrc not in self._routed:
            rtp_receiver = self._receiver_of_new_ssrc(router, packet.ssrc, named, rtp_receiver)
            if rtp_receiver is None:
                ssrc_table.pop(packet.ssrc, None)  # aiortc adopted it by payload type
                return "unknown_ssrc"
            ssrc_table[packet.ssrc] = rtp_receiver
            self._routed.add(packet.ssrc)
        if not isinstance(rtp_receiver, RTCRtpReceiver):
            return "unknown_ssrc"
        codec = getattr(rtp_receiver, RX_CODECS).get(packet.payload_type)
        if codec is None:
            return "unknown_codec"
        return rtp_receiver, codec

    def _receiver_of_new_ssrc(
        self, router: Any, ssrc: int, named: object, by_payload_type: object
    ) -> RTCRtpReceiver | None:
        """The receiver whose offer named `ssrc` (media, or RTX in an FID group), else
        the one aiortc picked by payload type provided its offer named no SSRC at all;
        None: nobody's."""
        if isinstance(named, RTCRtpReceiver):
            return named
        for candidate in getattr(router, ROUTER_RECEIVERS):
            if isinstance(candidate, RTCRtpReceiver) and ssrc in getattr(candidate, RX_RTX_SSRC):
                return candidate
        if not isinstance(by_payload_type, RTCRtpReceiver):
            return None
        if any(
            routed is by_payload_type and isinstance(other, int) and other not in self._learned
            for other, routed in getattr(router, ROUTER_SSRC_TABLE).items()
            if other != ssrc
        ):
            return None  # its offer named its SSRCs, and this is none of them
        self._learned.add(ssrc)
        return by_payload_type

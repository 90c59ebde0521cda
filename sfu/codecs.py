"""Which codecs can be forwarded as is, and what subscribers are offered.

Pure functions over aiortc's codec descriptions: the publisher's offer decides the
codec of each producer (Opus for audio; the first of the configured video codecs the
publisher offers and aiortc can packetize), and a subscriber is offered exactly that
codec (plus RTX for video) so no transcoding is ever needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpSender
from aiortc.rtcpeerconnection import is_codec_compatible

from sfu.ids import MediaKind


@dataclass(frozen=True)
class ForwardCodec:
    """The codec a producer publishes and its consumers receive."""

    kind: MediaKind
    name: str
    """``"opus"``, ``"VP8"`` or ``"H264"``."""
    clock_rate: int
    capability: RTCRtpCodecCapability = field(compare=False)
    """aiortc's own capability entry, as `setCodecPreferences` wants it."""
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str, int, tuple[tuple[str, str], ...]]:
        """Two producers with the same key can share a subscriber's m-section in turn."""
        return (self.kind, self.name.lower(), self.clock_rate, self.parameters)


def _local_capabilities(kind: MediaKind) -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpSender.getCapabilities(kind)
    return list(capabilities.codecs)


def _as_parameters(capability: RTCRtpCodecCapability) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=capability.mimeType,
        clockRate=capability.clockRate,
        channels=capability.channels,
        parameters=dict(capability.parameters),
    )


def _forward_codec(kind: MediaKind, remote: RTCRtpCodecParameters) -> ForwardCodec | None:
    for capability in _local_capabilities(kind):
        if capability.name.lower() == "rtx":
            continue
        if is_codec_compatible(_as_parameters(capability), remote):
            name = "opus" if capability.name.lower() == "opus" else capability.name.upper()
            params = tuple(sorted((k, str(v)) for k, v in capability.parameters.items()))
            return ForwardCodec(kind, name, capability.clockRate, capability, params)
    return None


def choose_codec(
    kind: MediaKind,
    remote_codecs: Sequence[RTCRtpCodecParameters],
    video_codecs: Sequence[str] = ("VP8", "H264"),
) -> tuple[RTCRtpCodecParameters, ForwardCodec] | None:
    """Pick the codec a publisher must send in one m-section, or `None` if none fits.

    Audio: Opus. Video: the first name of `video_codecs` that the publisher offers in a
    form aiortc can packetize (for H.264: packetization-mode 1, baseline profiles).
    """
    names = ["opus"] if kind == "audio" else [name.upper() for name in video_codecs]
    for name in names:
        for remote in remote_codecs:
            if remote.name.lower() != name.lower():
                continue
            forward = _forward_codec(kind, remote)
            if forward is not None:
                return remote, forward
    return None


def rtx_for(
    remote_codecs: Sequence[RTCRtpCodecParameters], payload_type: int | None
) -> RTCRtpCodecParameters | None:
    """The RTX codec whose ``apt`` is `payload_type`, if the remote offered one."""
    for codec in remote_codecs:
        if codec.name.lower() == "rtx" and codec.parameters.get("apt") == payload_type:
            return codec
    return None


def subscriber_preferences(codec: ForwardCodec) -> list[RTCRtpCodecCapability]:
    """The codec list for a subscriber transceiver: the producer's codec (+ RTX)."""
    preferences = [codec.capability]
    if codec.kind == "video":
        preferences += [c for c in _local_capabilities("video") if c.name.lower() == "rtx"][:1]
    return preferences

"""Media-plane settings: ICE servers, the addresses to gather on, forwarding knobs."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

SendPath = Literal["direct", "aiortc"]


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as handed to clients and to aiortc.

    aiortc uses at most one STUN and one TURN URL per connection (the first of each).
    """

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            object.__setattr__(self, "urls", (self.urls,))
        if not self.urls:
            raise ValueError("IceServer needs at least one URL")
        for url in self.urls:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"ICE server URL must be stun:, stuns:, turn: or turns:: {url!r}")


@dataclass(frozen=True)
class MediaConfig:
    """How the media plane connects and forwards.

    - `ice_servers` is always passed to aiortc, even empty, so aiortc never falls back
      to its silent default public STUN server.
    - `host_addresses`: local addresses to gather host candidates on. Empty means
      aioice's own discovery (every interface except loopback); tests use
      ``("127.0.0.1",)``.
    - `announced_address`: for 1:1 NAT, host candidates are announced with this address
      in the SDP handed to clients (the sockets stay bound to `host_addresses`).
    - `port_range`: inclusive UDP port range for host candidates (one port per peer
      connection); `None` lets the OS choose.
    """

    ice_servers: Sequence[IceServer] = ()
    host_addresses: Sequence[str] = ()
    announced_address: str | None = None
    port_range: tuple[int, int] | None = None
    keyframe_request_interval: float = 0.25
    """Minimum time between two upstream keyframe requests (PLI) for one producer."""
    max_frame_wait: float = 0.3
    """How long an incomplete video frame may wait for retransmissions before the
    forwarder skips it (and asks for a keyframe)."""
    consumer_queue_frames: int = 30
    """Frames buffered per consumer (``send_path="aiortc"``) before it drops them and
    waits for a keyframe; the direct path sends synchronously and buffers nothing."""
    audio_level_interval: float = 0.2
    """Period of `on_audio_level` reports per audio producer (seconds)."""
    stats_interval: float | None = 5.0
    """Period of `on_stats` reports per router (seconds); `None` disables them."""
    video_codecs: tuple[str, ...] = field(default=("VP8", "H264"))
    """Video codecs publishers may use, in server preference order."""
    publisher_remb: bool = True
    """Estimate each publisher's bandwidth and send it REMB (aiortc's receive-side
    estimator, about 50 us of CPU per received video packet). Browsers without
    transport-cc rely on it to ramp up; `False` removes abs-send-time from publish
    answers, which turns the estimator off."""
    send_path: SendPath = "direct"
    """How consumers send: ``"direct"`` packetizes each frame once per producer and
    sends its RTP packets synchronously per consumer (`DirectRtpSender`, about three
    times cheaper per packet); ``"aiortc"`` hands `av.Packet`s to aiortc's stock
    `RTCRtpSender` task, which packetizes per consumer. Both keep aiortc's RTCP
    (sender reports, NACK with RTX, PLI/FIR)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ice_servers", tuple(self.ice_servers))
        addresses = tuple(str(ipaddress.ip_address(a)) for a in self.host_addresses)
        object.__setattr__(self, "host_addresses", addresses)
        if self.announced_address is not None:
            ipaddress.ip_address(self.announced_address)
        if self.port_range is not None:
            low, high = self.port_range
            if not 1024 <= low <= high <= 65535:
                raise ValueError(
                    f"port_range must satisfy 1024 <= low <= high <= 65535: {low}-{high}"
                )
        for name in ("keyframe_request_interval", "max_frame_wait", "audio_level_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.stats_interval is not None and self.stats_interval <= 0:
            raise ValueError("stats_interval must be positive or None")
        if self.consumer_queue_frames < 2:
            raise ValueError("consumer_queue_frames must be at least 2")
        if self.send_path not in ("direct", "aiortc"):
            raise ValueError(f"send_path must be 'direct' or 'aiortc': {self.send_path!r}")
        unknown = set(self.video_codecs) - {"VP8", "H264"}
        if unknown or not self.video_codecs:
            raise ValueError(f"video_codecs must be a non-empty subset of VP8, H264: {unknown}")

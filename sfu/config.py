"""Media-plane settings: ICE servers, the addresses to gather on, forwarding knobs."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sfu import native_receive, native_send
from sfu.track_caps import TrackCaps

SendPath = Literal["direct", "aiortc"]
IceTransportPolicy = Literal["all", "relay"]
TurnTransport = Literal["udp", "tcp", "tls"]
"""How a client reaches its TURN server: ``turn:...?transport=udp``, ``turn:...?transport=tcp``
or ``turns:...`` (TLS over TCP)."""


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
    - `ice_servers_source`: when set, called for every new peer connection instead of
      reading `ice_servers` (fresh short-lived TURN credentials each time).
    - `ice_transport_policy`: ``"relay"`` gathers relayed candidates only (every packet
      goes through the TURN server); it needs a TURN server.
    - `turn_transports`: aiortc uses one TURN URL per connection: the first URL whose
      transport comes first in this preference order.
    """

    ice_servers: Sequence[IceServer] = ()
    host_addresses: Sequence[str] = ()
    announced_address: str | None = None
    port_range: tuple[int, int] | None = None
    ice_servers_source: Callable[[], Sequence[IceServer]] | None = None
    ice_transport_policy: IceTransportPolicy = "all"
    turn_transports: tuple[TurnTransport, ...] = ("udp", "tcp", "tls")
    ice_connect_timeout: float | None = 20.0
    """A peer connection whose remote description is applied but that has not connected
    within this many seconds is reported as failed (`on_participant_disconnected
    ("failed")`); aioice on its own gives up only after about a minute. `None`: wait."""
    remote_close_grace: float = 2.0
    """A connection the client closed (DTLS close_notify: state "closed", not "failed") is
    reported as failed only if the participant is still open this many seconds later: a
    client that leaves sends ``LEAVE_ROOM`` and closes its connections at once, and the
    close can arrive before the leave is handled."""
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
    estimator: 6 us of CPU per received video packet in a tight loop, ~19 us in a loaded
    server's profile). Browsers without transport-cc rely on it to ramp up; `False`
    removes abs-send-time from publish answers, which turns the estimator off."""
    subscriber_remb: bool = True
    """Stamp ``abs-send-time`` on what is sent to subscribers (direct send path), so that
    their receivers (Chromium, aiortc) estimate the downlink and send REMB, which limits
    what is forwarded to them (`sfu.bandwidth`); `False` leaves it out of subscribe
    offers (receiver-report loss still limits)."""
    send_path: SendPath = "direct"
    """How consumers send: ``"direct"`` packetizes each frame once per producer and
    sends its RTP packets synchronously per consumer (`DirectRtpSender`, about three
    times cheaper per packet); ``"aiortc"`` hands `av.Packet`s to aiortc's stock
    `RTCRtpSender` task, which packetizes per consumer. Both keep aiortc's RTCP
    (sender reports, NACK with RTX, PLI/FIR)."""
    native_send: bool = True
    """With ``send_path="direct"``: each frame's RTP packets are built, SRTP-protected and
    sent to a subscriber in one call of the optional C extension (`sfu.native_send`,
    built by ``pip install`` where a compiler exists; ~1.5 vs ~2.6 us per packet); the
    same datagrams as the Python path, which is used without it, for relayed pairs and
    for retransmissions."""
    native_fanout: bool = True
    """With `native_send`: a frame reaches all of a producer's consumers that are in
    steady state (forwarding that producer with no layer switch pending, not paused, on
    a native route) in one call of the C extension (`sfu.fanout`), with no Python per
    consumer; the others, relayed pairs and one frame in 32 of each producer (the
    members' route checks) take the per-consumer path. The same datagrams, counters and
    sender reports; `False` sends through `DirectRtpSender.send_frame` per consumer (one C
    call each)."""
    sync_receive: bool = True
    """Handle the server's received SRTP/SRTCP in the socket callback instead of through
    aioice's queue and the DTLS transport's task (`aiortc_adapter.
    receive_media_synchronously`): two event-loop hand-offs fewer per received packet."""
    native_receive: bool = True
    """With `sync_receive`: once a publish connection is keyed, its media datagrams go
    to the optional C extension (`sfu.native_receive`, built where a compiler exists):
    read in batches, unprotected, parsed, NACKed and assembled into frames without
    Python per packet, the publisher's payloads forwarded as they arrived
    (`aiortc_adapter.receive_natively`). Without it, or with `False`, aiortc's receiver
    and `sfu.assembler` do the same work in Python (`native_receive_active` says which)."""
    native_handoff: bool = True
    """With `native_receive` and `native_fanout`: while all of a producer's consumers are
    on its C fan-out (and it has no sink, is not paused, waits for no keyframe), the C
    receiver hands its audio frames and non-key video frames to the fan-out itself, with
    no Python per frame (`Producer.handed_off`); `False` brings every frame to Python."""
    publisher_remb_ceiling: int = 5_000_000
    """On the native receive path, the REMB (bits/s) each publish connection gets once a
    second when `publisher_remb` is on: a ceiling, not an estimate (the receive-side
    delay estimator stays on the Python path); the publisher's own loss-based control,
    fed by the receiver reports, works below it."""
    track_caps: TrackCaps = field(default_factory=TrackCaps)
    """What each published track may send (bits and packets per second, by kind):
    packets beyond are dropped before anything reads them, and counted
    (`sfu.refused_packet_totals`)."""
    coalesce_control_reads: bool = True
    """With `sync_receive`: once a subscribe connection is up, read its socket (the
    subscriber's RTCP and ICE consent checks) when a media packet arrives, at most every
    10 ms, instead of waking the event loop per datagram (`aiortc_adapter.ControlReads`);
    without media for 0.1 s they wake it again."""

    @property
    def native_receive_active(self) -> bool:
        """True when publish connections are received natively (the option is on and
        the extension is built)."""
        return self.native_receive and self.sync_receive and native_receive.AVAILABLE

    @property
    def media_paths(self) -> dict[str, str]:
        """Which receive and send paths media takes, ``"native"`` (the C extensions) or
        ``"python"``: what `/health` and `/metrics` report."""
        sends_natively = self.send_path == "direct" and self.native_send and native_send.AVAILABLE
        return {
            "receive": "native" if self.native_receive_active else "python",
            "send": "native" if sends_natively else "python",
        }

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
        if self.publisher_remb_ceiling < 10_000:
            raise ValueError("publisher_remb_ceiling must be at least 10000 bits/s")
        for name in ("keyframe_request_interval", "max_frame_wait", "audio_level_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.ice_transport_policy not in ("all", "relay"):
            raise ValueError(
                f"ice_transport_policy must be 'all' or 'relay': {self.ice_transport_policy!r}"
            )
        if not self.turn_transports or set(self.turn_transports) - {"udp", "tcp", "tls"}:
            raise ValueError(f"turn_transports must name udp, tcp or tls: {self.turn_transports}")
        if (
            self.ice_transport_policy == "relay"
            and self.ice_servers_source is None
            and not any(u.startswith("turn") for s in self.ice_servers for u in s.urls)
        ):
            raise ValueError("ice_transport_policy 'relay' needs a TURN server in ice_servers")
        if self.ice_connect_timeout is not None and self.ice_connect_timeout <= 0:
            raise ValueError("ice_connect_timeout must be positive or None")
        if self.remote_close_grace < 0:
            raise ValueError("remote_close_grace must be >= 0")
        if self.stats_interval is not None and self.stats_interval <= 0:
            raise ValueError("stats_interval must be positive or None")
        if self.consumer_queue_frames < 2:
            raise ValueError("consumer_queue_frames must be at least 2")
        if self.send_path not in ("direct", "aiortc"):
            raise ValueError(f"send_path must be 'direct' or 'aiortc': {self.send_path!r}")
        unknown = set(self.video_codecs) - {"VP8", "H264"}
        if unknown or not self.video_codecs:
            raise ValueError(f"video_codecs must be a non-empty subset of VP8, H264: {unknown}")

"""The native receive path: a publish connection's SRTP datagrams in, frames out
(`sfu/_receive_c/`).

The extension is optional (built by ``pip install -e .`` where a C compiler and the
Python headers exist); `AVAILABLE` is False without it and publish connections keep the
Python path (aiortc's receiver and `sfu.assembler`).

``Receiver(unprotect, session, keep, audio_level_id=-1, max_wait=0.3)`` unprotects with
``unprotect(session, packet, &length)`` (the addresses of libsrtp2's ``srtp_unprotect``
and of an ``srtp_t``; `keep` is held to keep the session alive). ``add_stream(ssrc,
kind, payload_type, clock_rate, token)`` routes an SSRC (`AUDIO`, `VP8` or `H264`) to
`token`, ``add_rtx(ssrc, media_ssrc, payload_type)`` an RTX SSRC to its video stream
(`payload_type` the RTX one). ``drain(fd)`` reads what the socket holds (recvmmsg, at
most 256 datagrams), ``feed(datagram, address)`` takes one datagram, ``feed_plain(rtp)``
one unprotected RTP packet; each returns the events, in order:

- ``(FRAME, token, payloads, pts, keyframe, temporal, layer_sync)``: a complete frame,
  its RTP payloads as received (video descriptors kept), `pts` in clock ticks from the
  stream's first frame;
- ``(LEVEL, token, level, voice)`` per audio packet with an RFC 6464 level;
  ``(SILENCE, token)`` for a packet of digital silence (not a frame);
- ``(LOSS, token)``: frames skipped for good (a keyframe is needed);
- ``(NACK, token, media_ssrc, sequence_numbers)``: packets went missing, all those still
  missing (aiortc's policy);
- ``(OTHER, datagram, address)``: not SRTP (STUN, DTLS); ``(RTCP, datagram)``: SRTCP,
  still protected; ``(UNKNOWN, rtp)``: unprotected RTP of an SSRC not added.

``ControlReader(unprotect_rtcp, session, keep, remb_interval=0.1)`` reads a subscribe
connection's control traffic: ``drain(fd)`` / ``feed(datagram)`` return ``(RTCP, plain)``
for SRTCP (unprotected with ``srtp_unprotect_rtcp``) and ``(OTHER, datagram, address)``
for the rest; a standalone REMB within `remb_interval` seconds of the last one passed is
dropped unread (a stock aiortc receiver sends one per packet or two), counted in
``counts()``.

``HeaderCounter()`` counts streams from their clear RTP headers, for a load generator's
subscribers: ``watch(ssrc, audio, consume)`` returns the stream's `HeaderCount`
(packets, bytes, frames, expected, first/last frame time); ``drain(fd)`` reads the
socket (recvmmsg) and returns ``(datagram, address)`` for each datagram it did not
consume (not RTP of a watched SSRC, or one watched with `consume` false), in order;
``feed(datagram)`` counts one, True when consumed.

``direct(ssrc, fanout, legs, gso)`` hands the stream's frames straight to the C fan-out
(``fanout(legs, payloads, pts, keyframe, picture_id, temporal, gso, route_check)``,
route_check on every 32nd frame of the stream, that is
`sfu.native_send.fanout`) instead of emitting them: every audio frame and every video
frame but keyframes (Python sees those). Levels and digital silence of a stream handed
off are tallied, not emitted; ``take(ssrc)`` returns the `Tally` since the last take
(None when empty) and starts a new one. A frame whose fan-out reported something (a
consumer the Python path must serve, a send error) comes as ``(REPORT, token, report,
legs, payloads, pts, keyframe, temporal, layer_sync)``. ``direct(ssrc, None)`` ends the
hand-off.

``statistics(ssrc)`` is ``(received, base_seq, max_seq, cycles, jitter)`` (aiortc's
`StreamStatistics` fields), ``counts(ssrc)`` the stream's counters.

What a connection may send (`guard.c`): ``cap(audio_bitrate, audio_packet_rate,
video_bitrate, video_packet_rate)`` caps every stream, per second (0: none; token
buckets one second deep, an RTX stream charged to its media stream); a packet over its
track's caps is dropped before the receive statistics (``counts(ssrc)["over_cap"]``).
``refuse(ssrc, reason)`` counts a packet Python found no negotiated track for
(``"unknown_ssrc"``, ``"unnegotiated_mid"``, ``"unknown_codec"``) and drops that SSRC's
packets unread for a second. RTP of SSRCs not added (32 a second after a burst of 64),
RTCP (200 after 400) and STUN/DTLS (50 after 100) reach Python within per-connection
budgets; beyond them they are dropped (``"unknown_flood"``, ``"rtcp_flood"``,
``"control_flood"``). ``refused`` is the connection's count per reason,
``refused_totals()`` the process's.
"""

from __future__ import annotations

from typing import NamedTuple

from sfu.native_choice import native_allowed

# Stream kinds and event tags (the C module defines the same values; checked below).
AUDIO, VP8, H264 = 0, 1, 2
FRAME, LEVEL, SILENCE, LOSS, NACK, OTHER, RTCP, UNKNOWN, REPORT = range(9)


class Tally(NamedTuple):
    """What a stream's direct hand-off did since the last `Receiver.take`: frames handed
    to the fan-out (`temporal_*` per temporal layer), the lowest audio level of the packets
    that had one (-1: none) and whether any said voice, the packets of digital silence;
    `last_frame` and `last_silent` are `time.monotonic()` values (0: none)."""

    frames: int
    keyframes: int
    bytes: int
    temporal_frames: tuple[int, int, int, int]
    temporal_bytes: tuple[int, int, int, int]
    last_frame: float
    level_min: int
    voice: bool
    silent: int
    last_silent: float


try:
    if not native_allowed():
        raise ImportError("SFU_NATIVE turns the C extensions off")
    from sfu import _receive
    from sfu._receive import ControlReader, HeaderCount, HeaderCounter, Receiver, refused_totals
except ImportError:  # not built: check AVAILABLE before using Receiver
    AVAILABLE = False
else:
    AVAILABLE = True
    _NAMES = ("AUDIO", "VP8", "H264", "FRAME", "LEVEL", "SILENCE", "LOSS", "NACK", "OTHER")
    for _name in (*_NAMES, "RTCP", "UNKNOWN", "REPORT"):
        if getattr(_receive, _name) != globals()[_name]:
            raise ImportError(f"sfu._receive.{_name} differs from sfu.native_receive's")

__all__ = [
    "AUDIO",
    "AVAILABLE",
    "FRAME",
    "H264",
    "LEVEL",
    "LOSS",
    "NACK",
    "OTHER",
    "REPORT",
    "RTCP",
    "SILENCE",
    "UNKNOWN",
    "VP8",
    "ControlReader",
    "HeaderCount",
    "HeaderCounter",
    "Receiver",
    "Tally",
    "refused_totals",
]

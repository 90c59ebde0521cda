"""The native send path (`sfu/_fanout_c/`): one frame to one subscriber per call
(`send_frame`, below), the C state of an outgoing stream (`Stream`) and of a consumer
(`Leg`, both in `sfu.streams`), and one frame to all of a producer's steady-state
consumers in one call (`fanout`, used by `sfu.fanout`).

The extension is optional (built by ``pip install -e .`` where a C compiler and the
Python headers exist); `AVAILABLE` is False without it and callers keep the Python path.

``send_frame(fd, address, protect, session, first_byte, payload_type, sequence_number,
timestamp, ssrc, extension, payloads, marker_on_last, gso)`` sends packet ``i`` as
``RTP header(first_byte, marker if marker_on_last and i is the last, payload_type,
(sequence_number + i) & 0xFFFF, timestamp, ssrc) + extension + payloads[i]``, protected
in place by ``protect(session, packet, &length)`` (the addresses of libsrtp2's
``srtp_protect`` and of an ``srtp_t``), to ``address`` (from `sockaddr`). With `gso`, a
frame whose packets all have the first one's size but the last (no longer) goes out in
one ``sendmsg`` per 64 packets or 60 kB with UDP_SEGMENT; otherwise one ``sendto`` per
packet. Returns the payload bytes sent. Raises ValueError / TypeError for bad arguments
(before anything is sent) and for a failed protect, BlockingIOError when the socket buffer
is full, OSError for other send errors (EINVAL, EIO, ENOPROTOOPT or EOPNOTSUPP on a GSO
send: the kernel cannot segment; retry with ``gso=False``). The GIL is held throughout,
so `fd` should be non-blocking.
"""

from __future__ import annotations

from sfu.native_choice import native_allowed

try:
    if not native_allowed():
        raise ImportError("SFU_NATIVE turns the C extensions off")
    from sfu._fanout import DEFERRED, GSO_RETRIED, Leg, Stream, fanout, send_frame, sockaddr
except ImportError:  # not built: check AVAILABLE before using any
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = [
    "AVAILABLE",
    "DEFERRED",
    "GSO_RETRIED",
    "Leg",
    "Stream",
    "fanout",
    "send_frame",
    "sockaddr",
]

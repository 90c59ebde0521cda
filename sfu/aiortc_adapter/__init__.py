"""The one package that touches aiortc / aioice internals (and asyncio's and pylibsrtp's).

Everything else in `sfu` goes through the functions re-exported here; `scripts/` only
through `sfu.aiortc_adapter.testing`. Importing the package checks that every internal
it relies on still exists (`internals`, which lists each one and why).

- `internals`: the private-name table, `check_internals` and the version check.
- `peer_connection`: `PeerConnection`, the `RTCPeerConnection` every connection is.
- `receivers`: publisher receivers feed the forwarder, never a decoder; sendonly
  receivers without receive state; upstream PLI; NACK counting; one REMB per publish
  connection.
- `senders`: keyframe requests, msid, the stock sender's counters, and what the direct
  send path (`sfu.direct_send`) takes over from a sender.
- `transports`: DTLS state, SRTP sessions, the nominated pair, relayed transports.
- `receive_path`: keyed SRTP/SRTCP handled in the socket callback.
- `publish_receive`: a publish connection's media through the C receiver
  (`sfu.native_receive`): batched reads, frames instead of packets.
- `control_reads`: control-only sockets read when the loop is awake anyway.
- `gathering`: host candidates on configured addresses and within a port range.
- `srtp`: allocation-free SRTP protect, and the pointers the C send and receive paths use.
- `testing`: what tests, benchmarks and synthetic peers may use.
"""

from sfu.aiortc_adapter.control_reads import ControlReads, defer_control_reads
from sfu.aiortc_adapter.gathering import configure_gathering
from sfu.aiortc_adapter.internals import AIOICE_VERSION, AIORTC_VERSION, check_internals
from sfu.aiortc_adapter.peer_connection import PeerConnection, close_began
from sfu.aiortc_adapter.publish_receive import (
    FrameTarget,
    NativeCounts,
    NativePublishReceive,
    native_receive_of,
    receive_natively,
)
from sfu.aiortc_adapter.receive_path import (
    intercept_rtcp,
    receive_media_synchronously,
    run_to_completion,
)
from sfu.aiortc_adapter.receivers import (
    DecoderQueueStub,
    NackCounter,
    PacketHandler,
    RembSum,
    add_sendonly_transceiver,
    decoder_queue,
    decoder_thread,
    intercept_receiver,
    is_intercepted,
    nack_counter,
    receive_state_released,
    release_receive_state,
    send_pli,
    sum_remb,
)
from sfu.aiortc_adapter.senders import (
    Retransmit,
    SenderCounters,
    on_keyframe_request,
    record_sender_report,
    set_msid,
    take_over_sending,
)
from sfu.aiortc_adapter.srtp import lean_protect, srtp_pointers, srtp_unprotect_pointers
from sfu.aiortc_adapter.transports import (
    dtls_connected,
    is_closing,
    is_relayed,
    nominated_pair,
    tx_srtp,
)

__all__ = [
    "AIOICE_VERSION",
    "AIORTC_VERSION",
    "ControlReads",
    "DecoderQueueStub",
    "FrameTarget",
    "NackCounter",
    "NativeCounts",
    "NativePublishReceive",
    "PacketHandler",
    "PeerConnection",
    "RembSum",
    "Retransmit",
    "SenderCounters",
    "add_sendonly_transceiver",
    "check_internals",
    "close_began",
    "configure_gathering",
    "decoder_queue",
    "decoder_thread",
    "defer_control_reads",
    "dtls_connected",
    "intercept_receiver",
    "intercept_rtcp",
    "is_closing",
    "is_intercepted",
    "is_relayed",
    "lean_protect",
    "nack_counter",
    "native_receive_of",
    "nominated_pair",
    "on_keyframe_request",
    "receive_media_synchronously",
    "receive_natively",
    "receive_state_released",
    "record_sender_report",
    "release_receive_state",
    "run_to_completion",
    "send_pli",
    "set_msid",
    "srtp_pointers",
    "srtp_unprotect_pointers",
    "sum_remb",
    "take_over_sending",
    "tx_srtp",
]

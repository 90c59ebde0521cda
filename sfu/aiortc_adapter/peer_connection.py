"""The `RTCPeerConnection` subclass every connection of ours is."""

from __future__ import annotations

import logging
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.exceptions import InvalidStateError

from sfu.aiortc_adapter.internals import PC_CERTIFICATES, PC_CONNECT
from sfu.aiortc_adapter.publish_receive import native_receive_of

logger = logging.getLogger(__name__)


class PeerConnection(RTCPeerConnection):
    """An `RTCPeerConnection` whose connect task retrieves its own errors, and whose
    certificate fingerprints are computed once.

    aiortc's `setLocalDescription` / `setRemoteDescription` start `__connect()` (ICE,
    then DTLS, transceiver after transceiver) with `asyncio.ensure_future` and keep no
    handle. Closed mid-handshake (a participant leaving while connecting), that task
    trips over the transports `close()` stopped: the DTLS handshake fails and the next
    transceiver's `RTCIceTransport.start()` raises ``InvalidStateError("RTCIceTransport
    is closed")``, which asyncio reports as "Task exception was never retrieved" once the
    task is collected. Here that expected case is logged at DEBUG; any other error of the
    task is logged as an error (nothing else ever retrieves it).

    aiortc recomputes three certificate digests for every m-section of every
    description it writes (`createOffer` with 62 m-sections: 3.2 ms, 1.35 ms without);
    the connection's one certificate never changes, so its `getFingerprints()` answers
    from a list computed here.

    Closing it closes its native receive paths first (`receive_natively`): their REMB
    and tally timers would otherwise reschedule themselves for ever, and through them
    the loop would keep the connection and its participant alive (a churning class grew
    by about 3 MB a rejoin).

    `closing` is true from the moment `close()` is called: aiortc refuses every
    negotiation from then on, while `signalingState` can still turn back to "stable"
    (a `setRemoteDescription` that was awaiting finishes after the close began) and
    `connectionState` says "closed" only once the transports have stopped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing = False
        for certificate in getattr(self, PC_CERTIFICATES):
            fingerprints = tuple(certificate.getFingerprints())
            certificate.getFingerprints = lambda known=fingerprints: list(known)

    async def close(self) -> None:
        self.closing = True
        for native in native_receive_of(self):
            native.close()
        await super().close()

    async def _RTCPeerConnection__connect(self) -> None:
        try:
            await getattr(super(), PC_CONNECT)()
        except Exception as exc:
            if self.signalingState == "closed" and isinstance(
                exc, InvalidStateError | ConnectionError
            ):
                logger.debug(
                    "peer connection closed while connecting: %s: %s", type(exc).__name__, exc
                )
            else:
                logger.error("connecting a peer connection failed", exc_info=exc)


def close_began(pc: RTCPeerConnection) -> bool:
    """Whether `pc` can negotiate no more: its close has begun, or the client closed it (a
    DTLS transport closed by close_notify, which aiortc refuses new transceivers on)."""
    if isinstance(pc, PeerConnection) and pc.closing:
        return True
    if "closed" in (pc.signalingState, pc.connectionState):
        return True
    return any(t.receiver.transport.state == "closed" for t in pc.getTransceivers())

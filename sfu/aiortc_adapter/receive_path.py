"""The synchronous receive path: keyed SRTP/SRTCP handled in the socket's callback
instead of through aioice's queue and the DTLS transport's task."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import pylibsrtp
from aiortc import RTCPeerConnection
from aiortc import clock as aiortc_clock
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import is_rtcp

from sfu.aiortc_adapter.control_reads import ControlReads
from sfu.aiortc_adapter.internals import (
    DTLS_RX_SRTP,
    FUTURE_BLOCKING,
    ICE_DATA_RECEIVED,
    ICE_PROTOCOLS,
    ICE_QUEUE,
)
from sfu.aiortc_adapter.transports import ice_connections

logger = logging.getLogger(__name__)

RtcpHandler = Callable[[bytes], bool]
"""Takes an unprotected RTCP compound; True when it handled it (aiortc never sees it)."""

_rtcp_handlers: weakref.WeakKeyDictionary[RTCDtlsTransport, RtcpHandler] = (
    weakref.WeakKeyDictionary()
)


def intercept_rtcp(dtls: RTCDtlsTransport, handler: RtcpHandler) -> None:
    """Offer every RTCP compound the synchronous receive path reads on `dtls` to
    `handler` first (for as long as `dtls` lives); what it declines goes to aiortc."""
    _rtcp_handlers[dtls] = handler


def receive_media_synchronously(pc: RTCPeerConnection) -> int:
    """Handle `pc`'s SRTP and SRTCP datagrams as they arrive, in the socket's callback.

    aioice puts every datagram on a queue that the DTLS transport's task drains: two
    event-loop hand-offs per packet, the larger part of what a received packet costs.
    Once the DTLS handshake has keyed SRTP, media datagrams go straight to the DTLS
    transport's own `_handle_rtp_data` / `_handle_rtcp_data` (what its task would call
    next); DTLS records, and everything before the keys exist, still take the queue.
    Call it when the transports exist (after the first offer/answer is applied); returns
    the number of ICE connections changed (0 when already done).
    """
    changed = 0
    for dtls, connection in ice_connections(pc):
        original = getattr(connection, ICE_DATA_RECEIVED)
        if isinstance(original, SrtpShortcut):
            continue
        pending = getattr(connection, ICE_QUEUE)
        shortcut = SrtpShortcut(
            dtls, original, pending, ControlReads.of(asyncio.get_running_loop())
        )
        setattr(connection, ICE_DATA_RECEIVED, shortcut)
        for protocol in getattr(connection, ICE_PROTOCOLS):
            candidate = getattr(protocol, "local_candidate", None)
            if candidate is not None and not isinstance(protocol.datagram_received, MediaFirst):
                protocol.datagram_received = MediaFirst(
                    protocol.datagram_received, shortcut, candidate.component
                )
        changed += 1
    return changed


class MediaFirst:
    """A `StunProtocol.datagram_received` that hands (S)RTP and (S)RTCP, whose first
    byte is 128-191, straight to the connection's receiver; aioice first tries to parse
    every datagram as STUN, and a STUN message's first byte is below 64."""

    __slots__ = ("_component", "_media", "_other")

    def __init__(
        self,
        other: Callable[[bytes, Any], None],
        media: Callable[[bytes, int], None],
        component: int,
    ) -> None:
        self._other = other
        self._media = media
        self._component = component

    def __call__(self, data: bytes, addr: Any) -> None:
        if data and 127 < data[0] < 192:
            self._media(data, self._component)
        else:
            self._other(data, addr)


class NativeMedia(Protocol):
    """Takes a connection's keyed SRTP datagrams instead of aiortc (the native receive
    path, `sfu.aiortc_adapter.publish_receive`)."""

    def media(self, datagram: bytes) -> None: ...


class SrtpShortcut:
    """An aioice `Connection.data_received` that handles keyed SRTP/SRTCP itself.

    `dtls` needs only ``_rx_srtp`` (None until keyed), ``_handle_rtp_data`` and
    ``_handle_rtcp_data``; `queue` is the connection's own ``data_received`` (which
    queues for the DTLS task) and `pending` that queue. With `native` set, keyed SRTP
    goes there instead of to aiortc.
    """

    __slots__ = ("_dtls", "_pending", "_queue", "_reads", "native")

    def __init__(
        self,
        dtls: RTCDtlsTransport,
        queue: Callable[[bytes, int], None],
        pending: asyncio.Queue[Any],
        reads: ControlReads,
    ) -> None:
        self._dtls = dtls
        self._queue = queue
        self._pending = pending
        self._reads = reads
        self.native: NativeMedia | None = None

    def __call__(self, data: bytes, component: int) -> None:
        dtls = self._dtls
        srtp = getattr(dtls, DTLS_RX_SRTP)
        # Anything still queued goes first (packets that arrived while SRTP was being
        # keyed): taking a shortcut past them would reorder the stream.
        if srtp is None or not data or not 127 < data[0] < 192 or not self._pending.empty():
            self._queue(data, component)
            return
        if is_rtcp(data):
            self.rtcp(data)
            return
        native = self.native
        if native is not None:
            native.media(data)
            return
        self._reads.on_media()
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error as exc:
            logger.debug("SRTP unprotect failed: %s", exc)
            return
        run_to_completion(dtls._handle_rtp_data(plain, arrival_time_ms=aiortc_clock.current_ms()))

    def on_media(self) -> None:
        """A media packet arrived (what the control reads are polled on)."""
        self._reads.on_media()

    def rtcp(self, data: bytes) -> None:
        """One SRTCP compound: unprotected, offered to the `intercept_rtcp` handler,
        else handed to aiortc."""
        dtls = self._dtls
        srtp = getattr(dtls, DTLS_RX_SRTP)
        if srtp is None:
            return
        try:
            plain = srtp.unprotect_rtcp(data)
        except pylibsrtp.Error as exc:
            logger.debug("SRTCP unprotect failed: %s", exc)
            return
        self.rtcp_plain(plain)

    def rtcp_plain(self, plain: bytes) -> None:
        """One unprotected RTCP compound (the C control reader unprotects itself)."""
        dtls = self._dtls
        handler = _rtcp_handlers.get(dtls)
        if handler is not None and handler(plain):
            return
        run_to_completion(dtls._handle_rtcp_data(plain))


def run_to_completion(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` now, in the caller's stack; if it has to wait (a send that
    blocks, e.g. over TURN/TCP), the rest runs like a task. Errors are logged."""
    try:
        waiting = coroutine.send(None)
    except StopIteration:
        return
    except Exception:
        logger.exception("handling a received packet failed")
        return
    _Resumer(coroutine).wait(waiting)


class _Resumer:
    """Steps a coroutine that had to wait, the way an asyncio Task would."""

    __slots__ = ("_coroutine",)

    def __init__(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._coroutine = coroutine

    def wait(self, waiting: object) -> None:
        if isinstance(waiting, asyncio.Future):
            # What a Task does with a future a coroutine yields: it is now waited on.
            setattr(waiting, FUTURE_BLOCKING, False)
            waiting.add_done_callback(self._step)
        else:  # a bare yield (asyncio.sleep(0))
            asyncio.get_running_loop().call_soon(self._step, None)

    def _step(self, _done: object) -> None:
        try:
            waiting = self._coroutine.send(None)
        except StopIteration:
            return
        except Exception:
            logger.exception("handling a received packet failed")
            return
        self.wait(waiting)

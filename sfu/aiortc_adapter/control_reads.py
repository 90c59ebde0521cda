"""Control reads: the sockets of connections that carry only control traffic are read
when the event loop is awake anyway, instead of letting each datagram wake it."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import time
import weakref
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

import sfu.native_receive as native_receive
from sfu.aiortc_adapter.internals import (
    DTLS_RX_SRTP,
    ICE_DATA_RECEIVED,
    ICE_PROTOCOLS,
    LOOP_REMOVE_READER,
    TRANSPORT_LOOP,
    TRANSPORT_READ_READY,
    TRANSPORT_SOCK_FD,
)
from sfu.aiortc_adapter.srtp import srtp_unprotect_rtcp_pointers
from sfu.aiortc_adapter.transports import ice_connections

logger = logging.getLogger(__name__)

_POLL_INTERVAL = 0.01  # most often a media packet polls the control sockets
_IDLE_AFTER = 0.1  # no media for this long: control datagrams wake the loop again
_WATCHDOG_PERIOD = 0.5
_POLL_ROUNDS = 4  # datagrams read per socket and poll, at most


def defer_control_reads(pc: RTCPeerConnection, native: bool = True) -> int:
    """Read the UDP sockets of `pc` when the event loop is awake anyway (see
    `ControlReads`). For a connection that receives no media: a subscribe connection,
    once connected. Relayed candidates are left alone. With `native` (and the extension
    built) the sockets are read by the C control reader (`NativeControl`). Returns the
    sockets deferred."""
    loop = asyncio.get_running_loop()
    if not hasattr(loop, LOOP_REMOVE_READER):
        return 0  # not a selector event loop
    reads = ControlReads.of(loop)
    deferred = 0
    for dtls, connection in ice_connections(pc):
        reader = _native_reader(dtls, connection) if native else None
        for protocol in getattr(connection, ICE_PROTOCOLS):
            transport = getattr(protocol, "transport", None)
            if reads.defer(transport, reader):
                deferred += 1
    return deferred


def _native_reader(dtls: RTCDtlsTransport, connection: Any) -> NativeControl | None:
    """The C reader of a keyed connection's control traffic, where the extension is
    built: batched reads, SRTCP unprotected in C, REMB floods thinned out."""
    # The synchronous receive path's `SrtpShortcut` (not imported: it imports us).
    rtcp_plain = getattr(getattr(connection, ICE_DATA_RECEIVED), "rtcp_plain", None)
    session = getattr(dtls, DTLS_RX_SRTP)
    if not native_receive.AVAILABLE or session is None or rtcp_plain is None:
        return None
    unprotect, srtp = srtp_unprotect_rtcp_pointers(session)
    reader = native_receive.ControlReader(unprotect, srtp, session, remb_interval=REMB_INTERVAL)
    return NativeControl(reader, rtcp_plain)


REMB_INTERVAL = 0.1
"""Seconds within which a subscriber's second standalone REMB is dropped unread (C
control reads): a stock aiortc receiver sends one per packet or two, ~60 a second."""


class NativeControl:
    """A deferred socket's reads through `native_receive.ControlReader`: what it returns
    goes to aioice (STUN, DTLS) or, unprotected, to the RTCP handling of the connection."""

    __slots__ = ("on_rtcp", "reader")

    def __init__(self, reader: Any, on_rtcp: Callable[[bytes], None]) -> None:
        self.reader = reader
        self.on_rtcp = on_rtcp

    @property
    def rembs_dropped(self) -> int:
        counts: dict[str, int] = self.reader.counts()
        return counts["rembs_dropped"]

    def read(self, fd: int, protocol: Any) -> None:
        for event in self.reader.drain(fd):
            if event[0] == native_receive.RTCP:
                self.on_rtcp(event[1])
            elif protocol is not None:
                protocol.datagram_received(event[1], event[2])


class ControlReads:
    """Reads the sockets of connections that carry only control traffic when the
    event loop is awake anyway, instead of letting each datagram wake it.

    A subscribe connection receives the subscriber's receiver reports, NACKs, PLIs and
    ICE consent checks: one or two datagrams a second, at random times. On an otherwise
    idle loop each one is a wake-up, which on a VM costs more CPU than handling the
    datagram. While media arrives (`on_media`, from the synchronous receive path), those
    sockets sit in a private epoll, polled without waiting at most every 10 ms, so a
    NACK is answered at the next media packet; after 0.1 s without media the private
    epoll's own descriptor joins the loop's selector, and control datagrams wake the loop
    as they arrive, as before. One per event loop.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ControlReads] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_ref = weakref.ref(loop)  # the loop keys `_by_loop` weakly
        self._epoll: select.epoll | None = None
        self._transports: dict[int, asyncio.BaseTransport] = {}
        self._native: dict[int, tuple[NativeControl, Any]] = {}
        self._next_poll = 0.0
        self._watching = False
        self._watchdog: asyncio.TimerHandle | None = None
        self.polls = 0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> ControlReads:
        reads = cls._by_loop.get(loop)
        if reads is None:
            reads = cls._by_loop[loop] = cls(loop)
        return reads

    @property
    def deferred(self) -> int:
        """Sockets read through the private epoll."""
        return len(self._transports)

    @property
    def descriptors(self) -> tuple[int, ...]:
        """The duplicated descriptors the private epoll watches (one per socket)."""
        return tuple(self._transports)

    @property
    def rembs_dropped(self) -> int:
        """Standalone REMBs the C control readers dropped unread (see `NativeControl`)."""
        return sum(native.rembs_dropped for native, _protocol in self._native.values())

    @property
    def native_readers(self) -> int:
        """Deferred sockets read by the C control reader."""
        return len(self._native)

    @property
    def waking(self) -> bool:
        """True while control datagrams wake the loop (no media lately)."""
        return self._watching

    def defer(self, transport: object, native: NativeControl | None = None) -> bool:
        """Take `transport`'s socket off the loop's selector; False if it is not a plain
        UDP socket transport of this loop, or already deferred or closing. With `native`,
        its datagrams are read through the C control reader."""
        loop = asyncio.get_running_loop()
        if (
            self._loop_ref() is not loop
            or not isinstance(transport, asyncio.BaseTransport)
            or not hasattr(transport, "sendto")
            or transport.is_closing()
            or getattr(transport, TRANSPORT_LOOP, None) is not loop
            or not hasattr(transport, TRANSPORT_READ_READY)
            or not isinstance(getattr(transport, TRANSPORT_SOCK_FD, None), int)
            or any(t is transport for t in self._transports.values())
        ):
            return False
        if self._epoll is None:
            self._epoll = select.epoll()
        # Our own duplicate is what the epoll watches: we can always unregister it,
        # whoever closes the transport's descriptor first.
        watched = os.dup(getattr(transport, TRANSPORT_SOCK_FD))
        getattr(loop, LOOP_REMOVE_READER)(getattr(transport, TRANSPORT_SOCK_FD))
        self._epoll.register(watched, select.EPOLLIN)
        self._transports[watched] = transport
        if native is not None:
            self._native[watched] = (native, transport.get_protocol())
        close = transport.close

        def close_and_forget() -> None:
            self._forget(watched)
            close()

        transport.close = close_and_forget  # type: ignore[method-assign]
        if self._watchdog is None:
            self._watchdog = loop.call_later(_WATCHDOG_PERIOD, self._check)
        if not self._watching and self._idle():
            self._watch(loop)
        return True

    def _idle(self) -> bool:
        # `_next_poll` is the last media-driven poll plus the poll interval
        return time.monotonic() >= self._next_poll - _POLL_INTERVAL + _IDLE_AFTER

    def on_media(self) -> None:
        """A media packet arrived: poll the deferred sockets if 10 ms have passed."""
        if not self._transports:
            return
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + _POLL_INTERVAL
        if self._watching:
            self._unwatch()
        self.poll()

    def poll(self) -> None:
        """Read what the deferred sockets hold (one datagram per socket and round)."""
        epoll = self._epoll
        if epoll is None:
            return
        self.polls += 1
        for _ in range(_POLL_ROUNDS):
            ready = epoll.poll(0)
            if not ready:
                return
            for watched, _events in ready:
                transport = self._transports.get(watched)
                if transport is None:
                    continue
                if transport.is_closing():
                    self._forget(watched)
                    continue
                native = self._native.get(watched)
                try:
                    if native is not None:
                        native[0].read(watched, native[1])
                    else:
                        getattr(transport, TRANSPORT_READ_READY)()
                except Exception:
                    logger.exception("handling a control datagram failed")

    def _check(self) -> None:
        self._watchdog = None
        for watched, transport in list(self._transports.items()):
            if transport.is_closing():
                self._forget(watched)
        loop = self._loop_ref()
        if loop is None or not self._transports:
            return
        if (
            not self._watching
            and time.monotonic() >= self._next_poll + _IDLE_AFTER - _POLL_INTERVAL
        ):
            self._watch(loop)
            self.poll()
        self._watchdog = loop.call_later(_WATCHDOG_PERIOD, self._check)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._epoll is not None
        loop.add_reader(self._epoll.fileno(), self.poll)
        self._watching = True

    def _unwatch(self) -> None:
        loop = self._loop_ref()
        if loop is not None and self._epoll is not None:
            loop.remove_reader(self._epoll.fileno())
        self._watching = False

    def _forget(self, watched: int) -> None:
        self._native.pop(watched, None)
        if self._transports.pop(watched, None) is None:
            return
        assert self._epoll is not None
        self._epoll.unregister(watched)
        os.close(watched)
        if not self._transports:
            if self._watching:
                self._unwatch()
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None

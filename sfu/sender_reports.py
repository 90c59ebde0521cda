"""Sender reports of the direct send path: one connection's streams reported together,
on one clock for the whole process, and the subscriber's receiver reports read back.

aiortc/aioice are reached only through `sfu.aiortc_adapter`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from typing import Protocol

import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu import aiortc_adapter
from sfu.bandwidth import LOSS_SPAN, DownlinkEstimate, RecentRates
from sfu.rtcp import ReportBlock, SenderReport, compound_packets, read_feedback
from sfu.stats import SendCounts

logger = logging.getLogger(__name__)

_REPORT_TICK = 0.5
"""Seconds between the sender-report clock's ticks (one timer for the whole process)."""
_PACKET_OVERHEAD = 12 + 10 + 28
"""Bytes on the wire per RTP packet beyond its payload: RTP header, SRTP tag, UDP/IPv4
(the header extensions add a few more)."""
_RATE_WINDOW = 0.5
STALL = 0.15
"""A report tick this late means the process stopped sending for that long."""
AFTER_STALL = 3.0
"""Seconds after such a stall during which a REMB cut is put down to it (see
`DownlinkEstimate.on_remb`)."""
_REPORT_DELAY = (0.25, 1.25)
"""A connection's next reports are due this long after its last (uniformly drawn); ticks
round it up to 0.5, 1.0 or 1.5 s: about once a second on average, like aiortc's."""


class PacketRoute(Protocol):
    """Where a reported stream's packets currently go (`sfu.direct_send.Route`)."""

    def send(self, packets: list[bytes], uniform: bool = False) -> None: ...


class ReportedStream(Protocol):
    """One stream a connection reports about (`sfu.direct_send.DirectRtpSender`)."""

    @property
    def ssrc(self) -> int: ...

    def sender_report(self, now: float) -> SenderReport | None: ...

    def on_receiver_report(self, block: ReportBlock, now: float) -> None: ...

    def counts(self) -> SendCounts: ...

    def live_route(self) -> PacketRoute | None: ...


class SenderReports:
    """Sender reports for all the direct senders of one DTLS transport, sent together,
    and the subscriber's receiver reports about them, read without aiortc.

    aiortc runs a task per sender that wakes up about once a second to send one SR and
    SDES: a subscriber with 60 m-sections costs 60 wake-ups and 60 datagrams a second.
    Here a connection's reports go out together, in compound packets of up to 16
    (`sfu.rtcp.compound_packets`), when the process-wide `ReportClock` finds them due:
    on a mostly idle server every wake-up costs ~100 us of CPU (`scripts/bench/
    relay_floor.py`), so 50 subscribers' timers cost more than their reports.
    """

    _by_transport: weakref.WeakKeyDictionary[RTCDtlsTransport, SenderReports] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = weakref.ref(dtls)
        self._senders: dict[int, ReportedStream] = {}
        self._by_ssrc: dict[int, ReportedStream] = {}
        self._clock: ReportClock | None = None
        self.compounds_sent = 0
        self.receiver_reports = 0
        self.estimate = DownlinkEstimate()
        """The connection's downlink, from the subscriber's REMB and loss."""
        self._retired_bytes = 0
        self._rate_bytes = 0
        self._rate_at: float | None = None
        self._sent_rate = 0.0
        self._recent = RecentRates()
        self._reported_packets: dict[int, int] = {}
        self._nacks = 0
        self._nacked_at: float | None = None
        aiortc_adapter.intercept_rtcp(dtls, self.take_receiver_reports)

    @classmethod
    def of(cls, dtls: RTCDtlsTransport) -> SenderReports:
        """The reports of `dtls`'s senders (made on first use)."""
        reports = cls._by_transport.get(dtls)
        if reports is None:
            reports = cls._by_transport[dtls] = cls(dtls)
        return reports

    @property
    def senders(self) -> int:
        return len(self._senders)

    def add(self, sender: ReportedStream) -> None:
        self._senders[id(sender)] = sender
        self._by_ssrc[sender.ssrc] = sender
        if self._clock is None:
            self._clock = ReportClock.of(asyncio.get_running_loop())
            self._clock.add(self)

    def discard(self, sender: ReportedStream) -> None:
        if self._senders.pop(id(sender), None) is not None:
            self._retired_bytes += _wire_bytes(sender.counts())
        if self._by_ssrc.get(sender.ssrc) is sender:
            del self._by_ssrc[sender.ssrc]
        if not self._senders and self._clock is not None:
            self._clock.discard(self)
            self._clock = None

    def send_now(self) -> int:
        """Send every sending stream's report; returns the number of packets sent."""
        dtls = self._dtls()
        srtp = None if dtls is None else aiortc_adapter.tx_srtp(dtls)
        route = next((r for s in self._senders.values() if (r := s.live_route())), None)
        if srtp is None or route is None:
            return 0
        now = time.time()
        reports = [
            report
            for report in (s.sender_report(now) for s in self._senders.values())
            if report is not None
        ]
        compounds = compound_packets(reports)
        for compound in compounds:
            route.send([srtp.protect_rtcp(compound)])
        self.compounds_sent += len(compounds)
        return len(compounds)

    def take_receiver_reports(self, data: bytes) -> bool:
        """Handle a received (unprotected) RTCP compound if it is only receiver reports
        about our direct senders, SDES and REMB: what subscribers send about once a
        second per stream. aiortc's path for those (parse into objects, route, a stats
        object per report) costs several times more. Anything else returns False, for
        aiortc."""
        feedback = read_feedback(data)
        if feedback is None:
            return False
        blocks = feedback.blocks
        senders = [self._by_ssrc.get(block.ssrc) for block in blocks]
        if None in senders:
            return False
        now = time.time()
        monotonic = time.monotonic()
        sent_rate = self.sent_rate(monotonic)
        lost = weight = 0.0
        for sender, block in zip(senders, blocks, strict=True):
            assert sender is not None
            sender.on_receiver_report(block, now)
            packets = sender.counts().packets
            new = packets - self._reported_packets.get(block.ssrc, packets)
            self._reported_packets[block.ssrc] = packets
            lost += block.fraction_lost * new
            weight += new
        # Feedback is about what was sent up to a report interval ago: at a layer
        # down, about the layer before.
        recent_rate = max(sent_rate, self._recent.peak(monotonic))
        estimate = self.estimate
        before = estimate.last_congestion
        if weight > 0:
            estimate.on_loss(lost / weight, recent_rate, monotonic)
        if feedback.remb is not None:
            stalled = self._clock is not None and self._clock.stalled_within(AFTER_STALL, monotonic)
            estimate.on_remb(
                feedback.remb,
                recent_rate,
                monotonic,
                after_stall=stalled,
                nacked=self._nacked_within(LOSS_SPAN, monotonic),
            )
        if estimate.last_congestion is not before and estimate.last_congestion is not None:
            signal, value, against = estimate.last_congestion
            logger.info(
                "downlink limited to %.0f kbit/s (%s %s while sending %.0f kbit/s)",
                (estimate.limit or 0) / 1000,
                signal,
                f"{value / 1000:.0f} kbit/s" if signal == "remb" else f"{value:.0%} lost",
                against / 1000,
            )
        self.receiver_reports += 1
        return True

    def _nacked_within(self, seconds: float, now: float) -> bool:
        """The subscriber NACKed a packet of these senders in the last `seconds`: loss,
        seen a report interval before its receiver report says so."""
        nacks = sum(s.counts().nacks for s in self._senders.values())
        if nacks > self._nacks:
            self._nacked_at = now
        self._nacks = nacks  # a sender gone takes its count along
        return self._nacked_at is not None and now - self._nacked_at <= seconds

    def sent_rate(self, now: float) -> float:
        """bit/s sent on the connection's direct senders over the last half second or
        more (`now`: `time.monotonic()`)."""
        sent = self._retired_bytes + sum(_wire_bytes(s.counts()) for s in self._senders.values())
        if self._rate_at is None:
            self._rate_at, self._rate_bytes = now, sent
        elif now - self._rate_at >= _RATE_WINDOW:
            self._sent_rate = 8 * (sent - self._rate_bytes) / (now - self._rate_at)
            self._rate_at, self._rate_bytes = now, sent
            self._recent.add(self._sent_rate, now)
        return self._sent_rate


def _wire_bytes(counts: SendCounts) -> int:
    return counts.payload_bytes + counts.packets * _PACKET_OVERHEAD


class ReportClock:
    """One timer per event loop, ticking every 0.5 s while any connection has senders,
    that sends the reports of the connections that are due."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReportClock] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        # No reference to the loop: it keys `_by_loop` weakly.
        self._due: dict[SenderReports, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tick_due = 0.0
        self.ticks = 0
        self.stalled_at: float | None = None
        """Loop time (``time.monotonic()``) of the last tick that came `STALL` late."""

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> ReportClock:
        clock = cls._by_loop.get(loop)
        if clock is None:
            clock = cls._by_loop[loop] = cls()
        return clock

    def __contains__(self, reports: object) -> bool:
        """True while `reports` is on this clock (its connection has senders)."""
        return reports in self._due

    def add(self, reports: SenderReports) -> None:
        loop = asyncio.get_running_loop()
        self._due[reports] = loop.time() + random.uniform(*_REPORT_DELAY)
        if self._timer is None:
            self._schedule(loop)

    def discard(self, reports: SenderReports) -> None:
        self._due.pop(reports, None)
        if not self._due and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stalled_within(self, span: float, now: float) -> bool:
        """A tick came late (the event loop was held up) within `span` s before `now`."""
        return self.stalled_at is not None and now - self.stalled_at < span

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tick_due = loop.time() + _REPORT_TICK
        self._timer = loop.call_at(self._tick_due, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._tick_due > STALL:
            self.stalled_at = now
        due = [reports for reports, at in self._due.items() if at <= now]
        for reports in due:
            self._due[reports] = now + random.uniform(*_REPORT_DELAY)
            try:
                reports.send_now()
            except (pylibsrtp.Error, OSError) as exc:
                logger.debug("sending sender reports failed: %s", exc)
        if self._due:
            self._schedule(loop)
        else:
            self._timer = None

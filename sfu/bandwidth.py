"""How much one subscribe connection can take: pure logic over what the subscriber
reports (no clock of its own, no sockets).

Nothing limits a connection until it shows congestion: the server forwards what the
subscriber asked for. Two signals say a link is full, as in Google congestion control:

- **REMB** (`on_remb`): the subscriber's receive-side (delay-based) estimate, sent by
  Chromium and aiortc when ``goog-remb`` is negotiated and the RTP they receive carries
  ``abs-send-time``. A receiver's estimate (AIMD) never grows past ~1.5x what it has
  been receiving and drops only when it detects overuse (to 0.85x what it receives),
  so a REMB is read as a limit only when it is below what is being sent *and* lower
  than the one before. A first REMB is what the receiver measured coming in (aiortc's
  counts video payload only: audio and headers make what is sent some 10 % more), and
  after the server raised what it sends (a layer up) REMBs stay under the new rate for
  seconds while the receiver catches up: neither says the link is full. And since a
  busy receiver or server delays packets the way a full link does (on a loaded machine
  Chromium's estimate halved on loopback after a participant reconnected), a cut counts
  only while the receiver also loses packets: its last receiver report says 2 % or more,
  or it NACKed a packet within the last `LOSS_SPAN` (a NACK comes within a round trip of
  the loss, the receiver report up to 1.5 s later: on a full link the cut and the NACKs
  come together, on a busy loopback neither loss nor NACKs do).
- **Loss** (`on_loss`): receiver reports' fraction lost. Over 10 % the limit drops to
  ``sent * (1 - loss / 2)`` (GCC's loss-based controller).

For both, ``sent`` is the most that went out over the span the feedback may be about
(`RecentRates`): loss or a cut reported just after a layer went down happened at the
rate before.

Once limited, the limit grows by 8 % a second while loss stays under 2 %, but for
`HOLD` seconds after the last congestion it stays under 90 % of the rate that was
congested, so a layer that just failed is not tried again at once; after that it is
back to at least that rate, so the layer is tried again. Trying is the only way to
learn that the link got better: a receiver's REMB never vouches for much more than it
gets, and growing 8 % a second from a cut to the low layer's rate takes ~15 s to reach
the high layer's again.
"""

from __future__ import annotations

HIGH_LOSS = 0.10
LOW_LOSS = 0.02
GROWTH_PER_SECOND = 0.08
HOLD = 8.0
"""Seconds after congestion during which the limit stays below the congested rate:
also about how long a link that got better waits for its layer back (the issue allows
15 s), and how often a link that did not pays for one more try."""
REMB_MARGIN = 0.8
"""A REMB cut under this share of the sent rate says the link is full: on overuse the
receiver's estimate drops to 0.85x what it receives, which on a full link is already
below what is sent (keyframe bursts and window edges move the sent rate by some
percent)."""
REMB_DROP = 0.95
"""A REMB under this share of the previous one is a receiver's overuse cut."""
MAX_LIMIT = 100e6
LOSS_SPAN = 1.5
"""Seconds of sending a receiver report's fraction lost may be about (aiortc and
Chromium report every 0.5 to 1.5 s)."""


class DownlinkEstimate:
    """One subscribe connection's available downlink rate, in bit/s (None: no limit)."""

    __slots__ = (
        "_congested_at",
        "_congested_rate",
        "_grown_at",
        "_limit",
        "last_congestion",
        "last_loss",
        "remb",
    )

    def __init__(self) -> None:
        self._limit: float | None = None
        self._congested_rate = 0.0
        self._congested_at = 0.0
        self._grown_at = 0.0
        self.last_loss: float | None = None
        """The last fraction lost it was told (0..1)."""
        self.remb: float | None = None
        """The last REMB bitrate it was told."""
        self.last_congestion: tuple[str, float, float] | None = None
        """What last set the limit: ("remb" | "loss", the REMB or fraction lost, the
        sent rate it was held against)."""

    def on_remb(
        self,
        bitrate: float,
        sent_rate: float,
        now: float,
        *,
        after_stall: bool = False,
        nacked: bool = False,
    ) -> None:
        """The subscriber estimates `bitrate` while `sent_rate` bit/s go out.

        `after_stall`: the server's own process stopped sending for a moment just before
        (its event loop was held up): what was queued then left in a burst, which a
        receiver's delay-based detector takes for a full link, and the rate it measured
        coming in collapsed meanwhile. Such a cut says nothing about the link.
        `nacked`: the subscriber NACKed packets lately."""
        previous, self.remb = self.remb, float(bitrate)
        dropped = previous is not None and bitrate < REMB_DROP * previous
        if after_stall:
            return
        lossy = nacked or (self.last_loss is not None and self.last_loss >= LOW_LOSS)
        if sent_rate > 0 and dropped and lossy and bitrate < REMB_MARGIN * sent_rate:
            self.last_congestion = ("remb", float(bitrate), sent_rate)
            self._congested(float(bitrate), sent_rate, now)

    def on_loss(self, fraction_lost: float, sent_rate: float, now: float) -> None:
        """A receiver report said `fraction_lost` while `sent_rate` bit/s went out."""
        self.last_loss = fraction_lost
        if sent_rate <= 0:
            return
        if fraction_lost > HIGH_LOSS:
            self.last_congestion = ("loss", fraction_lost, sent_rate)
            self._congested(sent_rate * (1 - fraction_lost / 2), sent_rate, now)
        elif fraction_lost < LOW_LOSS and self._limit is not None:
            elapsed = max(0.0, min(1.0, now - self._grown_at))
            grown = min(MAX_LIMIT, self._limit * (1 + GROWTH_PER_SECOND * elapsed))
            if now - self._congested_at < HOLD:
                grown = min(grown, max(self._limit, 0.9 * self._congested_rate))
            else:
                grown = max(grown, self._congested_rate)
            self._limit = grown
            self._grown_at = now

    @property
    def limit(self) -> float | None:
        """The rate the connection takes without congestion (None: no limit known)."""
        return self._limit

    def _congested(self, limit: float, sent_rate: float, now: float) -> None:
        self._limit = limit if self._limit is None else min(self._limit, limit)
        self._congested_rate = sent_rate
        self._congested_at = self._grown_at = now


class RecentRates:
    """The rates a connection sent at over the last `span` seconds (pure: told the time)."""

    __slots__ = ("_rates", "span")

    def __init__(self, span: float = LOSS_SPAN) -> None:
        self.span = span
        self._rates: list[tuple[float, float]] = []

    def add(self, rate: float, now: float) -> None:
        """`rate` bit/s was measured over a window ending at `now`."""
        self._rates.append((now, rate))
        self._rates = [(at, r) for at, r in self._rates if at >= now - self.span]

    def peak(self, now: float) -> float:
        """The highest rate measured in the last `span` seconds (0 if none)."""
        return max((r for at, r in self._rates if at >= now - self.span), default=0.0)

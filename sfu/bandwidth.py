"""How much one subscribe connection can take: pure logic over what the subscriber
reports (no clock of its own, no sockets).

Nothing limits a connection until it shows congestion: the server forwards what the
subscriber asked for. Two signals say a link is full, as in Google congestion control:

- **REMB** (`on_remb`): the subscriber's receive-side (delay-based) estimate, sent by
  Chromium and aiortc when ``goog-remb`` is negotiated and the RTP they receive carries
  ``abs-send-time``. A receiver never reports much more than 1.5x what it receives, so
  a REMB is read only as a limit when it is below what is being sent; since it lags
  what is sent (a camera turned back on takes the receiver's estimate a few seconds to
  follow), only when two in a row are below the lowest rate sent over the last seconds
  (the caller's `sent_rate`); and since a busy receiver or server delays packets the
  way a full link does (a loaded machine's Chromium halves its estimate on loopback),
  only while the receiver also reports some loss (2 % or more).
- **Loss** (`on_loss`): receiver reports' fraction lost. Over 10 % the limit drops to
  ``sent * (1 - loss / 2)`` (GCC's loss-based controller).

Once limited, the limit grows by 8 % a second while loss stays under 2 %, but for
`HOLD` seconds after the last congestion it stays under 90 % of the rate that was
congested, so a layer that just failed is not tried again at once.
"""

from __future__ import annotations

HIGH_LOSS = 0.10
LOW_LOSS = 0.02
GROWTH_PER_SECOND = 0.08
HOLD = 10.0
"""Seconds after congestion during which the limit stays below the congested rate."""
REMB_MARGIN = 0.8
"""A REMB under this share of the sent rate says the link is full. A receiver's first
estimate is the rate it measures coming in, about what is sent (keyframe bursts and
window edges move it by some percent); on overuse Chromium's drops to 0.85x what it
receives, which on a full link is already below what is sent."""
MAX_LIMIT = 100e6


class DownlinkEstimate:
    """One subscribe connection's available downlink rate, in bit/s (None: no limit)."""

    __slots__ = (
        "_congested_at",
        "_congested_rate",
        "_grown_at",
        "_limit",
        "_low_rembs",
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
        self._low_rembs = 0
        self.last_congestion: tuple[str, float, float] | None = None
        """What last set the limit: ("remb" | "loss", the REMB or fraction lost, the
        sent rate it was held against)."""

    def on_remb(self, bitrate: float, sent_rate: float, now: float) -> None:
        """The subscriber estimates `bitrate` while at least `sent_rate` bit/s went out
        (the lowest rate over the last seconds)."""
        self.remb = float(bitrate)
        lossy = self.last_loss is not None and self.last_loss >= LOW_LOSS
        if sent_rate > 0 and bitrate < REMB_MARGIN * sent_rate and lossy:
            self._low_rembs += 1
            if self._low_rembs >= 2:
                self.last_congestion = ("remb", float(bitrate), sent_rate)
                self._congested(float(bitrate), sent_rate, now)
        else:
            self._low_rembs = 0

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

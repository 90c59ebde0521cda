"""What one client may ask of the server over its WebSockets: events per second per socket
(a token bucket), and sockets per account. Pure logic; the endpoint and the event router
apply it."""

from __future__ import annotations

import time
from collections.abc import Callable

TOO_MANY_EVENTS = "Too many events, slow down"
TOO_MANY_SOCKETS = "Too many connections for this account"
POLICY_VIOLATION = 1008
"""WebSocket close code for a client that keeps breaking a limit (RFC 6455 7.4.1)."""


class EventBucket:
    """A token bucket: `burst` events at once, then `rate` a second.

    `take()` spends a token if there is one. A client that keeps sending after it is
    refused is to be closed: `refused_in_a_row` counts the refusals since the last event
    taken.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("an event bucket needs a rate above 0 and a burst of at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self.refused_in_a_row = 0

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False

    @property
    def exhausted(self) -> bool:
        """Refused as many events in a row as the burst holds: time to close the socket."""
        return self.refused_in_a_row >= self._burst

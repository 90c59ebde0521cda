"""Keyframe request policy for one producer: coalesce, rate-limit, retry.

Requests come from new consumers, from subscribers' PLI/FIR, from a consumer that
overflowed, and from frame loss on the publisher link. However many arrive, the
publisher sees at most one PLI per `interval`; a request is satisfied by the next
keyframe, and the PLI is repeated every `interval` until one arrives (PLIs get lost,
encoders take time). Pure logic: the clock, the timer and the sending are injected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


Scheduler = Callable[[float, Callable[[], None]], Cancellable]
"""`(delay, callback) -> handle`, e.g. `loop.call_later`."""


class KeyframeRequester:
    """Turns any number of keyframe requests into rate-limited upstream PLIs.

    `send()` returns False when no PLI can be sent yet (e.g. the publisher's SSRC is not
    known before its first packet); the request then stays pending and is retried.
    """

    def __init__(
        self,
        send: Callable[[], bool],
        interval: float,
        clock: Callable[[], float],
        schedule: Scheduler,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._schedule = schedule
        self._last_sent: float | None = None
        self._timer: Cancellable | None = None
        self._closed = False
        self.pending = False
        self.requests = 0
        self.sent = 0

    def request(self) -> None:
        """Ask for a keyframe; cheap to call often."""
        if self._closed:
            return
        self.requests += 1
        self.pending = True
        if self._timer is not None:
            return  # a PLI is in flight or scheduled: the next keyframe serves this too
        now = self._clock()
        if self._last_sent is None or now - self._last_sent >= self._interval:
            self._fire(now)
        else:
            self._arm(self._last_sent + self._interval - now)

    def on_keyframe(self) -> None:
        """A keyframe arrived from the publisher: every pending request is served."""
        self.pending = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Stop for good; cancels the retry timer."""
        self._closed = True
        self.on_keyframe()

    def _fire(self, now: float) -> None:
        if self._send():
            self._last_sent = now
            self.sent += 1
        self._arm(self._interval)

    def _arm(self, delay: float) -> None:
        self._timer = self._schedule(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.pending and not self._closed:
            self._fire(self._clock())

"""The keyframe request policy, with a fake clock and timer."""

from __future__ import annotations

from collections.abc import Callable

from sfu.keyframes import KeyframeRequester


class Timers:
    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timers.Handle:
        cancelled = [False]
        self.pending.append((self.now + delay, callback, cancelled))
        return Timers.Handle(cancelled)

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while True:
            due = sorted(
                (t for t in self.pending if t[0] <= target and not t[2][0]), key=lambda t: t[0]
            )
            if not due:
                break
            when, callback, _ = due[0]
            self.pending.remove(due[0])
            self.now = when
            callback()
        self.now = target

    class Handle:
        def __init__(self, cancelled: list[bool]) -> None:
            self._cancelled = cancelled

        def cancel(self) -> None:
            self._cancelled[0] = True


def make(can_send: list[bool] | None = None) -> tuple[KeyframeRequester, Timers, list[float]]:
    timers = Timers()
    sent: list[float] = []

    def send() -> bool:
        if can_send is not None and not can_send[0]:
            return False
        sent.append(timers.now)
        return True

    return KeyframeRequester(send, 0.25, timers.clock, timers.schedule), timers, sent


def test_a_burst_of_requests_sends_one_pli_and_the_keyframe_serves_them_all() -> None:
    requester, timers, sent = make()
    for _ in range(20):
        requester.request()
        timers.advance(0.005)
    assert sent == [0.0]
    requester.on_keyframe()
    timers.advance(1.0)
    assert sent == [0.0]
    assert requester.requests == 20 and requester.sent == 1


def test_the_pli_is_repeated_every_interval_until_a_keyframe_arrives() -> None:
    requester, timers, sent = make()
    requester.request()
    timers.advance(0.6)
    assert sent == [0.0, 0.25, 0.5]
    requester.on_keyframe()
    timers.advance(1.0)
    assert len(sent) == 3


def test_a_request_soon_after_a_served_one_waits_for_the_interval() -> None:
    requester, timers, sent = make()
    requester.request()
    timers.advance(0.05)
    requester.on_keyframe()
    requester.request()
    assert sent == [0.0]
    timers.advance(0.25)
    assert sent == [0.0, 0.25]


def test_a_request_that_cannot_be_sent_yet_is_retried_and_close_stops_everything() -> None:
    can_send = [False]
    requester, timers, sent = make(can_send)
    requester.request()
    timers.advance(0.3)
    assert sent == []
    can_send[0] = True
    timers.advance(0.25)
    assert sent == [0.5]
    requester.close()
    requester.request()
    timers.advance(1.0)
    assert sent == [0.5]

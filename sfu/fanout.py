"""The C fan-out: one call sends a producer's frame to all of its consumers that are in
steady state, with no Python per consumer (`native_send.fanout`, `sfu/_fanout_c/leg.c`).

Python keeps every decision: a consumer is a member (`Consumer._sync_fanout`) only while
it forwards this very producer with no layer switch pending, is not paused, and its
`DirectRtpSender` is bound and on a native route (`fans_out`); it leaves and comes back
as any of that changes (pause, resume, a preferred layer or a target, a switch done, a
route lost or resolved, close). Membership changes are synchronous and never inside the
C call, and a producer takes the member list once per frame before anything runs, so a
consumer that moves while a frame is being handed out gets it exactly once.

What the C call does per member is what `Consumer._deliver` (temporal thinning),
`DirectOutput.push` (picture ids) and `DirectRtpSender.send_frame` do, on the same
state (`sfu.streams`). It hands back what it did not simply send: one frame in 32 of
the producer goes through `Consumer._deliver` for every member, whose route the Python
path checks then (`ROUTE_CHECK_MASK`: one report for all members, not one per member's
own 32nd frame on nearly every frame of a large fan-out), as does a
VP8 frame whose picture id cannot be rewritten); a send error goes to
`DirectRtpSender.send_failed` (closes the route, or turns GSO off after the frame was
sent once more without it); the other members are not held up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from sfu import native_send
from sfu.direct_send import ROUTE_CHECK_MASK, Route
from sfu.ids import ConsumerId
from sfu.streams import LegState

if TYPE_CHECKING:
    from sfu.consumer import Consumer
    from sfu.media_frame import MediaFrame

FanoutReport: TypeAlias = list[tuple[int, int]]
"""What `native_send.fanout` hands back: (index of the leg, `DEFERRED` or an errno)."""


class Fanout:
    """The members of one producer's C fan-out."""

    __slots__ = ("_frames", "_members", "consumers", "legs")

    def __init__(self) -> None:
        self._members: dict[ConsumerId, Consumer] = {}
        self._frames = 0
        self.legs: tuple[LegState, ...] = ()
        self.consumers: tuple[Consumer, ...] = ()
        """In the order of `legs`."""

    def __contains__(self, consumer: Consumer) -> bool:
        return consumer.id in self._members

    def add(self, consumer: Consumer) -> None:
        self._members[consumer.id] = consumer
        self._update()

    def discard(self, consumer: Consumer) -> bool:
        """Take `consumer` out; True if it was a member."""
        if self._members.pop(consumer.id, None) is None:
            return False
        self._update()
        return True

    def _update(self) -> None:
        self.consumers = tuple(self._members.values())
        self.legs = tuple(consumer.leg for consumer in self.consumers)

    def send(self, frame: MediaFrame) -> None:
        """`frame` (with payloads: the direct send path) to every member."""
        legs, consumers = self.legs, self.consumers  # what the C call sees
        payloads = frame.payloads
        assert payloads is not None
        self._frames += 1
        # All members' route checks on one frame in 32: one report for all of them.
        check = self._frames & ROUTE_CHECK_MASK == 0
        if check:
            frame.route_check = True
        report = native_send.fanout(
            legs,
            payloads.items,
            frame.pts,
            frame.keyframe,
            frame.picture_id,
            frame.temporal,
            Route.gso_supported,
            check,
        )
        if report is not None:
            self._handle(report, consumers, frame)

    def hand_off(self) -> tuple[Callable[..., Any], tuple[LegState, ...], bool]:
        """What the native receive path calls per frame instead of `send` (the
        arguments of `NativeCounts.forward_directly`)."""
        return native_send.fanout, self.legs, Route.gso_supported

    def handle_report(
        self,
        report: FanoutReport,
        legs: tuple[object, ...],
        frame: MediaFrame,
        consumers: Iterable[Consumer],
    ) -> None:
        """What the C fan-out left to Python when the receive path handed it `frame`
        with `legs` (this fan-out's then, or earlier: `consumers` are the producer's,
        in case one has left since)."""
        if legs is self.legs:
            self._handle(report, self.consumers, frame)
            return
        owners = {id(consumer.leg): consumer for consumer in consumers}
        for index, status in report:
            consumer = owners.get(id(legs[index]))
            if consumer is not None:
                self._handle([(index, status)], {index: consumer}, frame)

    @staticmethod
    def _handle(
        report: FanoutReport,
        consumers: tuple[Consumer, ...] | dict[int, Consumer],
        frame: MediaFrame,
    ) -> None:
        for index, status in report:
            consumer = consumers[index]
            if status == native_send.DEFERRED:
                consumer._deliver(frame)
            else:
                consumer._fanout_failed(status)

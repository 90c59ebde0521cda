"""A room's media: its participants, their producers, and the consumers between them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from types import MappingProxyType

from sfu.config import MediaConfig
from sfu.consumer import Consumer
from sfu.counters import CounterTotals, new_totals
from sfu.errors import Closed, InvalidState
from sfu.events import RouterListener, SafeListener
from sfu.ids import AppData, ParticipantId, ProducerId, RouterId
from sfu.participant import Participant
from sfu.producer import Producer
from sfu.stats import RouterStats

logger = logging.getLogger(__name__)


class Router:
    """The media plane of one room (mediasoup's Router).

    It forwards what it is told to: `consume(subscriber, producer)` makes the `Consumer`
    that forwards one producer to one participant. Who consumes what is the caller's
    policy (the control plane's room model); a new producer is announced through
    `RouterListener.on_producer_added`, a new participant is the caller's own
    `add_participant`. Events go to `listener` (see `RouterListener`). `close()` closes
    every participant; it is idempotent.
    """

    def __init__(
        self,
        router_id: RouterId,
        config: MediaConfig,
        listener: RouterListener | None = None,
        app_data: AppData | None = None,
    ) -> None:
        self.id = router_id
        self.config = config
        self.app_data: AppData = dict(app_data or {})
        self._listener = SafeListener(listener)
        self._participants: dict[ParticipantId, Participant] = {}
        self._producers: dict[ProducerId, Producer] = {}
        self._retired = new_totals()
        """What closed producers and consumers counted, added once as each closes."""
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Router({self.id}, {len(self._participants)} participants)"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def participants(self) -> Mapping[ParticipantId, Participant]:
        return MappingProxyType(self._participants)

    @property
    def producers(self) -> Mapping[ProducerId, Producer]:
        return MappingProxyType(self._producers)

    def add_participant(
        self, participant_id: ParticipantId, app_data: AppData | None = None
    ) -> Participant:
        """Add a participant; it consumes nothing until `consume` is called for it.

        Must be called from the event loop. Raises `Closed` on a closed router,
        `InvalidState` if the id is taken.
        """
        if self._closed:
            raise Closed(f"router {self.id} is closed")
        if participant_id in self._participants:
            raise InvalidState(f"participant {participant_id} is already in router {self.id}")
        participant = Participant(self, participant_id, self.config, self._listener, app_data)
        self._participants[participant_id] = participant
        self._start_stats()
        return participant

    def consume(
        self,
        subscriber: Participant,
        producer: Producer,
        *,
        paused: bool = False,
        app_data: AppData | None = None,
    ) -> Consumer:
        """Forward `producer` to `subscriber`: the returned consumer's m-section goes into
        `subscriber`'s next subscribe offer, and media flows from the first keyframe after
        the answer (not before `resume()` if `paused`).

        One consumer per (publisher, source): if `subscriber` already consumes another
        layer of `producer`'s source, `producer` becomes one more layer of that consumer,
        which is returned (as it is when it consumes `producer` already; `paused` and
        `app_data` are then ignored). Raises `Closed` when the router, the subscriber or
        the producer is closed, `InvalidState` when either is not this router's or the
        producer is the subscriber's own.
        """
        if self._closed:
            raise Closed(f"router {self.id} is closed")
        if subscriber.closed:
            raise Closed(f"participant {subscriber.id} is closed")
        if producer.closed:
            raise Closed(f"producer {producer.id} is closed")
        if self._participants.get(subscriber.id) is not subscriber:
            raise InvalidState(f"participant {subscriber.id} is not in router {self.id}")
        if self._producers.get(producer.id) is not producer:
            raise InvalidState(f"producer {producer.id} is not in router {self.id}")
        if producer.participant_id == subscriber.id:
            raise InvalidState(f"participant {subscriber.id} cannot consume its own producer")
        existing = subscriber.consumer_of(producer)
        if existing is not None:
            if existing.codec.key == producer.codec.key:
                existing._add_layer(producer)
                return existing
            existing.close()  # the source changed codec: a new m-section carries it
        return subscriber._consume(producer, paused, app_data)

    def stats(self) -> RouterStats:
        return RouterStats(
            router_id=self.id,
            participants=tuple(p.stats() for p in self._participants.values()),
        )

    def counter_totals(self) -> CounterTotals:
        """Per media kind, everything this router's producers and consumers ever counted.

        Closed ones' final counts (added once, at their close) plus the live ones' current
        counts; a new object the caller may keep or modify. The totals never go down. Cheap:
        integer adds per live producer and consumer, no `stats()` snapshot.
        """
        totals = {kind: counters.copy() for kind, counters in self._retired.items()}
        for producer in self._producers.values():
            producer.add_counters(totals[producer.kind].producers)
        for participant in self._participants.values():
            for consumer in participant.consumers.values():
                consumer.add_counters(totals[consumer.kind].consumers)
        return totals

    async def close(self) -> None:
        """Close every participant (and so every producer and consumer). Idempotent."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        self._closed = True
        if self._stats_task is not None:
            self._stats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stats_task
            self._stats_task = None
        await asyncio.gather(*(p.close() for p in list(self._participants.values())))

    # ----------------------------------------------------------------- from participants

    def _producer_added(self, producer: Producer) -> None:
        self._producers[producer.id] = producer
        self._listener.on_producer_added(producer)

    def _producer_removed(self, producer: Producer) -> None:
        if self._producers.pop(producer.id, None) is producer:
            producer.add_counters(self._retired[producer.kind].producers)

    def _consumer_removed(self, consumer: Consumer) -> None:
        # The participant calls this once, after `Consumer.close()` froze its counts.
        consumer.add_counters(self._retired[consumer.kind].consumers)

    def _participant_closed(self, participant: Participant) -> None:
        if self._participants.get(participant.id) is participant:
            del self._participants[participant.id]

    # ----------------------------------------------------------------- stats

    def _start_stats(self) -> None:
        interval = self.config.stats_interval
        if interval is not None and self._stats_task is None:
            self._stats_task = asyncio.get_running_loop().create_task(self._report_stats(interval))

    async def _report_stats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self._listener.on_stats(self, self.stats())
            except Exception:
                logger.exception("computing router stats failed")

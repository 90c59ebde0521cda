"""Who receives what of whose media in a class room: the policy the room model applies to
its ``sfu.Router`` (which forwards only what it is told to, through ``Router.consume``,
``Consumer.pause``/``resume`` and ``Consumer.set_preferred_layer``).

Every member consumes every source of the others (one consumer and one m-section per
publisher and source); what each consumer forwards is decided per subscriber from
what the subscriber asked for (``SUBSCRIPTION``: a camera ``high``, ``low`` or ``off``,
a screen or microphone ``on`` or ``off``; default everything on, camera high) within
its downlink (``Participant.downlink_limit``), by ``api.rooms.allocation``. The
subscriber is told what it gets (``LAYERS``) whenever that changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sfu import Consumer, Participant, ParticipantId, Producer, Router

from .allocation import Allocation, Candidate, Choice, allocate

DEFAULT_CHOICE: dict[str, Choice] = {"camera": "high", "screen": "on", "microphone": "on"}
LAYER_OF: dict[Choice, int] = {"high": 1, "low": 0}
CHOICE_OF_LAYER: dict[int, Choice] = {1: "high", 0: "low"}
DEFAULT_RATES: dict[tuple[str, int], float] = {
    ("camera", 1): 600_000.0,
    ("camera", 0): 150_000.0,
    ("screen", 1): 1_000_000.0,
    ("microphone", 1): 40_000.0,
}
"""bit/s assumed for a source before its publisher's rate is measured."""
FRAME_RATE_SLACK = 1.1
"""A measured frame rate this much above a cap still meets it (30.4 fps for 30)."""
VIDEO_OVERHEAD = 1.08  # RTP, SRTP and UDP/IP headers on ~1,100-byte packets
AUDIO_OVERHEAD = 20_000.0  # the same on 50 small packets a second

LayersHandler = Callable[[Participant, dict[str, dict[str, Any]]], None]
"""`(subscriber, {userId: {source: choice, ..., "reason"}})`: what changed for it."""


def user_of(participant_app_data: dict[str, Any], participant_id: ParticipantId) -> str:
    return str(participant_app_data.get("userId") or participant_id)


class SelectiveForwarding:
    """Consumes everything for everyone, and forwards what each subscriber asked for
    and can take.

    ``participant_joined`` after ``Router.add_participant``; ``producer_added`` /
    ``producer_removed`` from the router's listener; ``subscribe`` for ``SUBSCRIPTION``;
    ``speaker_changed`` when the active speaker changes; ``reallocate`` about once a
    second (downlink estimates and publishers' rates move).
    """

    def __init__(self, router: Router, on_layers: LayersHandler) -> None:
        self.router = router
        self._on_layers = on_layers
        self._requests: dict[ParticipantId, dict[str, dict[str, Choice]]] = {}
        self._frame_rates: dict[ParticipantId, dict[str, dict[str, float]]] = {}
        self._told: dict[ParticipantId, dict[str, dict[str, Any]]] = {}
        self._budgets: dict[ParticipantId, float | None] = {}
        self._speaker: str | None = None

    # -- events ---------------------------------------------------------------
    def participant_joined(self, participant: Participant) -> None:
        for producer in list(self.router.producers.values()):
            if producer.participant_id != participant.id:
                self.router.consume(participant, producer)
        self.allocate(participant)

    def participant_left(self, participant: Participant) -> None:
        self._requests.pop(participant.id, None)
        self._frame_rates.pop(participant.id, None)
        self._told.pop(participant.id, None)
        self._budgets.pop(participant.id, None)

    def producer_added(self, producer: Producer) -> None:
        for participant in self._others(producer.participant_id):
            self.router.consume(participant, producer)
            self.allocate(participant, only=producer.participant_id)

    def producer_removed(self, producer: Producer) -> None:
        for participant in self._others(producer.participant_id):
            self.allocate(participant)

    def subscribe(
        self,
        subscriber: Participant,
        update: dict[str, dict[str, Choice]],
        frame_rates: dict[str, dict[str, float | None]] | None = None,
    ) -> None:
        """Merge a ``SUBSCRIPTION`` update into what `subscriber` asked for, and apply.
        `frame_rates`: per user, the frames per second wanted at most of a video source
        (None lifts the cap)."""
        requests = self._requests.setdefault(subscriber.id, {})
        for user_id, choices in update.items():
            requests.setdefault(user_id, {}).update(choices)
        caps = self._frame_rates.setdefault(subscriber.id, {})
        for user_id, rates in (frame_rates or {}).items():
            user_caps = caps.setdefault(user_id, {})
            for source, fps in rates.items():
                if fps is None:
                    user_caps.pop(source, None)
                else:
                    user_caps[source] = fps
        self.allocate(subscriber)

    def users_named_after(
        self, subscriber: Participant, update: dict[str, dict[str, Choice]]
    ) -> int:
        """How many users `subscriber`'s requests would name with `update` merged."""
        return len(set(self._requests.get(subscriber.id, {})) | set(update))

    def speaker_changed(self, user_id: str) -> None:
        self._speaker = user_id
        for participant in self._others(None):
            self.allocate(participant)

    def reallocate(self, *, changed_only: bool = False) -> None:
        """Apply again where a downlink limit exists or changed (rates and estimates
        move; `changed_only`: just where it changed), or where frame-rate caps apply
        (which temporal layers fit follows the publisher's measured frame rate and
        layers, which a cap sent before they were measured could not use); otherwise
        only events change anything."""
        for participant in self._others(None):
            budget = participant.downlink_limit
            before = self._budgets.get(participant.id)
            if changed_only:
                if budget != before:
                    self.allocate(participant)
            elif budget is not None or before is not None or self._capped(participant):
                self.allocate(participant)

    def _capped(self, subscriber: Participant) -> bool:
        """`subscriber` caps some publisher's frame rate."""
        return any(self._frame_rates.get(subscriber.id, {}).values())

    # -- allocation -------------------------------------------------------------
    def allocate(self, subscriber: Participant, *, only: ParticipantId | None = None) -> None:
        """Decide and apply what each of `subscriber`'s consumers forwards; tell it.

        `only`: just that publisher's consumers changed (it published), which without a
        downlink limit cannot change what the others get: a join of a class of 31 then
        costs each subscriber its newcomer's consumers, not all of them again."""
        if subscriber.closed:
            return
        budget = subscriber.downlink_limit
        if budget is not None:
            only = None
        self._budgets[subscriber.id] = budget
        requests = self._requests.get(subscriber.id, {})
        caps = self._frame_rates.get(subscriber.id, {})
        consumers: dict[tuple[str, str], Consumer] = {}
        candidates: list[Candidate] = []
        for consumer in subscriber.consumers.values():
            if only is not None and consumer.publisher_id != only:
                continue
            publisher = self.router.participants.get(consumer.publisher_id)
            if publisher is None or consumer.closed:
                continue
            user_id = user_of(publisher.app_data, publisher.id)
            source = consumer.source
            requested = requests.get(user_id, {}).get(source, DEFAULT_CHOICE[source])
            key: tuple[str, str] = (user_id, source)
            consumers[key] = consumer
            fps = caps.get(user_id, {}).get(source)
            candidates.append(
                self._candidate(consumer, user_id, publisher.app_data.get("role"), requested, fps)
            )
        result = allocate(candidates, budget)
        for key, allocation in result.items():
            _apply(consumers[key], allocation)
        self._tell(subscriber, result, consumers, complete=only is None)

    def _candidate(
        self,
        consumer: Consumer,
        user_id: str,
        role: object,
        requested: Choice,
        fps: float | None = None,
    ) -> Candidate:
        source = consumer.source
        rates: dict[Choice, float] = {}
        temporal_rates: dict[Choice, list[float]] = {}
        for layer, producer in consumer.producers.items():
            choice = CHOICE_OF_LAYER.get(layer, "high") if source == "camera" else "on"
            rate = rates[choice] = _wire_rate(producer)
            below = range(producer.temporal_layers - 1)
            if below:
                temporal_rates[choice] = [rate * producer.temporal_share(t)[0] for t in below]
        on_stage = False
        if source == "microphone":
            priority = 0
        elif source == "screen":
            priority, on_stage = 1, True
        elif role == "teacher":
            priority, on_stage = 2, requested == "high"
        elif user_id == self._speaker:
            priority = 3
        else:
            priority = 4 if requested == "high" else 5
        max_temporal = None if fps is None else _temporal_for(consumer, fps)
        return Candidate(
            user_id, source, requested, rates, priority, on_stage, temporal_rates, max_temporal
        )

    def _tell(
        self,
        subscriber: Participant,
        result: dict[tuple[str, str], Allocation],
        consumers: dict[tuple[str, str], Consumer],
        *,
        complete: bool = True,
    ) -> None:
        """Send what changed; `complete`: `result` covers every publisher (those missing
        from it are gone)."""
        now: dict[str, dict[str, Any]] = {}
        for (user_id, source), allocation in result.items():
            entry = now.setdefault(user_id, {"reason": "requested"})
            entry[source] = allocation.choice
            if allocation.limited:
                entry["reason"] = "bandwidth"
            share = _frame_rate_share(consumers[(user_id, source)], allocation)
            if share is not None:
                entry.setdefault("frameRate", {})[source] = share
        told = self._told.setdefault(subscriber.id, {})
        changed = {user: entry for user, entry in now.items() if told.get(user) != entry}
        for user in list(told) if complete else ():
            if user not in now:
                del told[user]
        if changed:
            told.update(changed)
            self._on_layers(subscriber, changed)

    def _others(self, participant_id: ParticipantId | None) -> list[Participant]:
        return [
            p for p in self.router.participants.values() if p.id != participant_id and not p.closed
        ]


def _apply(consumer: Consumer, allocation: Allocation) -> None:
    choice = allocation.choice
    if choice == "off":
        consumer.pause()
        return
    if consumer.source == "camera":
        layer = LAYER_OF.get(choice)
        if consumer.preferred_layer != layer:
            consumer.set_preferred_layer(layer)
    if consumer.max_temporal_layer != allocation.temporal:
        consumer.set_max_temporal_layer(allocation.temporal)
    consumer.resume()


def _temporal_for(consumer: Consumer, fps: float) -> int:
    """The most temporal layers of `consumer`'s best layer whose frame rate stays within
    `fps` (at least the base layer)."""
    producer = consumer.producers[max(consumer.producers)]
    rate = producer.frame_rate
    best = 0
    for t in range(producer.temporal_layers):
        if rate * producer.temporal_share(t)[1] <= fps * FRAME_RATE_SLACK:
            best = t
    return best


def _frame_rate_share(consumer: Consumer, allocation: Allocation) -> float | None:
    """The share of its publisher's frame rate a consumer forwards when it thins
    temporal layers (1/2 per layer left out, as in VP8's ``L1T2``/``L1T3``), else None."""
    if allocation.temporal is None or allocation.choice == "off":
        return None
    producer = consumer.producer
    top = producer.temporal_layers - 1
    if allocation.temporal >= top:
        return None
    return float(2.0 ** (allocation.temporal - top))


def _wire_rate(producer: Producer) -> float:
    measured = producer.bitrate or DEFAULT_RATES.get((producer.source, producer.layer), 0.0)
    if producer.kind == "audio":
        return measured + AUDIO_OVERHEAD
    return measured * VIDEO_OVERHEAD

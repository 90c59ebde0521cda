"""Who consumes what on a bare `sfu.Router` (no control plane): everyone receives every
other participant's tracks, as the classroom does (`api.rooms.forwarding_policy`)."""

from __future__ import annotations

from collections.abc import Mapping

from sfu import Participant, Producer, Router, StreamLabel


def consume_existing(router: Router, subscriber: Participant) -> None:
    """`subscriber` (just added) consumes every producer of the others."""
    for producer in list(router.producers.values()):
        if producer.participant_id != subscriber.id:
            router.consume(subscriber, producer)


def consume_new(router: Router, producer: Producer) -> None:
    """Every other open participant consumes `producer` (from `on_producer_added`)."""
    for participant in list(router.participants.values()):
        if participant.id != producer.participant_id and not participant.closed:
            router.consume(participant, producer)


def stream_labels(streams: Mapping[str, StreamLabel]) -> dict[str, dict[str, str]]:
    """A subscribe offer's streams as the class WebSocket labels them, the participant id
    standing for the user id: ``{streamId: {"userId", "source"}}``."""
    return {
        stream_id: {"userId": label.participant_id, "source": label.source}
        for stream_id, label in streams.items()
    }

"""Who receives whose media in a class room: the policy the room model applies to its
``sfu.Router`` (which forwards only what it is told to, through ``Router.consume``).

Today every member receives every other member's tracks; selective forwarding (e.g.
only the teacher and the active speakers) replaces this class, not the router.
"""

from __future__ import annotations

from sfu import Participant, Producer, Router


class EveryoneReceivesEveryone:
    """Every participant consumes every producer of the others.

    ``participant_joined`` after ``Router.add_participant``: the newcomer consumes what is
    already published; ``producer_added`` from ``RouterListener.on_producer_added``: every
    other participant consumes the new track.
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    def participant_joined(self, participant: Participant) -> None:
        for producer in list(self.router.producers.values()):
            if producer.participant_id != participant.id:
                self.router.consume(participant, producer)

    def producer_added(self, producer: Producer) -> None:
        for participant in list(self.router.participants.values()):
            if participant.id != producer.participant_id and not participant.closed:
                self.router.consume(participant, producer)

"""Media plane of the classroom SFU: forwards encoded media between WebRTC peers.

Public surface (see README.md)::

    router = Router(RouterId("room"), MediaConfig(host_addresses=["127.0.0.1"]), listener)
    participant = router.add_participant(ParticipantId("user"), {"role": "student"})
    answer = await participant.publish(offer_sdp)
    # listener.on_producer_added(producer) -> the caller's policy decides who receives it:
    consumer = router.consume(other_participant, producer)  # consumer.pause() / .resume()
    # listener.on_subscribe_offer(participant, offer_sdp, streams) -> client answers:
    await participant.subscribe_answer(answer_sdp)
    await participant.close(); await router.close()

`sfu` imports nothing from `api`, aiohttp or any database; it reports upward through
`RouterListener`.
"""

from sfu.config import IceServer, MediaConfig
from sfu.consumer import Consumer
from sfu.counters import ConsumerCounters, CounterTotals, MediaCounters, ProducerCounters
from sfu.errors import AdapterError, Closed, InvalidCandidate, InvalidSdp, InvalidState, SfuError
from sfu.events import RouterListener
from sfu.ids import (
    AppData,
    ConsumerId,
    DisconnectReason,
    MediaKind,
    ParticipantId,
    PcName,
    ProducerId,
    RouterId,
    StreamLabel,
    TrackSource,
)
from sfu.participant import Participant
from sfu.peer import create_peer_connection, set_local_description
from sfu.producer import Producer
from sfu.router import Router
from sfu.sdp import TrackSpec
from sfu.stats import ConsumerStats, ParticipantStats, ProducerStats, RouterStats
from sfu.track_caps import REFUSAL_REASONS, TrackCaps, refused_packet_totals

__all__ = [
    "REFUSAL_REASONS",
    "AdapterError",
    "AppData",
    "Closed",
    "Consumer",
    "ConsumerCounters",
    "ConsumerId",
    "ConsumerStats",
    "CounterTotals",
    "DisconnectReason",
    "IceServer",
    "InvalidCandidate",
    "InvalidSdp",
    "InvalidState",
    "MediaConfig",
    "MediaCounters",
    "MediaKind",
    "Participant",
    "ParticipantId",
    "ParticipantStats",
    "PcName",
    "Producer",
    "ProducerCounters",
    "ProducerId",
    "ProducerStats",
    "Router",
    "RouterId",
    "RouterListener",
    "RouterStats",
    "SfuError",
    "StreamLabel",
    "TrackCaps",
    "TrackSource",
    "TrackSpec",
    "create_peer_connection",
    "refused_packet_totals",
    "set_local_description",
]

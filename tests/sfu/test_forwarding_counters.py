"""Forwarded packet/byte and NACK counters, checked against what real aiortc peers see."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scripts.support.loopback import SEND_CONFIGS, Room, wait_for
from scripts.synthpeer.client import MediaClient
from scripts.synthpeer.sink import StreamSink
from sfu import Consumer, Producer


def _producer(room: Room, name: str, kind: str) -> Producer:
    return next(
        p for p in room.participants[name].producers.values() if p.kind == kind and not p.closed
    )


def _consumer(room: Room, name: str, producer: Producer) -> Consumer:
    return next(c for c in room.participants[name].consumers.values() if c.producer is producer)


def _sink(room: Room, receiver: str, publisher: str, kind: str) -> StreamSink:
    sink = room.sink(receiver, publisher, kind)
    assert sink is not None
    return sink


def _balanced(consumer: Consumer, client: MediaClient, sink: StreamSink) -> Callable[[], bool]:
    def check() -> bool:
        stats = consumer.stats()
        sent = stats.packets_forwarded + stats.retransmissions
        return sent - client.dropped == sink.packets

    return check


def _all_received(consumer: Consumer, sink: StreamSink) -> Callable[[], bool]:
    return lambda: consumer.stats().packets_forwarded == sink.packets


@pytest.mark.parametrize("send", SEND_CONFIGS)
async def test_forwarded_packets_and_bytes_are_what_the_subscriber_receives(
    send: str,
) -> None:
    room = Room(SEND_CONFIGS[send])
    try:
        await room.join("teacher", decode="none")
        await room.join("student", video=False, audio=False, decode="none")
        await wait_for(
            lambda: (s := room.sink("student", "teacher", "video")) is not None and s.frames >= 30,
            timeout=8,
            what="a second of video",
        )
        for kind in ("video", "audio"):
            producer = _producer(room, "teacher", kind)
            consumer = _consumer(room, "student", producer)
            sink = _sink(room, "student", "teacher", kind)
            # No loss on loopback: between two frames every forwarded packet has arrived.
            await wait_for(
                _all_received(consumer, sink),
                timeout=2,
                what=f"{kind}: subscriber received every forwarded packet",
            )
            stats = consumer.stats()
            assert stats.packets_forwarded >= stats.frames_forwarded > 0
            assert stats.frames_forwarded <= producer.stats().frames
            assert stats.nacks_received == stats.retransmissions == 0
            assert producer.stats().nacks_sent == 0
            # Payload bytes: the depayloaded frames plus each packet's payload descriptor
            # (VP8: a few bytes; Opus: none). The sink counts completed frames only.
            assert sink.bytes > 0
            slack = stats.bytes_forwarded - sink.bytes
            if kind == "audio":
                assert stats.packets_forwarded == stats.frames_forwarded
                assert stats.bytes_forwarded >= sink.bytes
                assert slack <= 200  # at most the one frame not yet delivered
            else:
                assert (
                    stats.packets_forwarded > stats.frames_forwarded
                )  # 640x360 frames span packets
                assert stats.packets_forwarded <= slack <= 6 * stats.packets_forwarded + 20_000
        totals = room.router.stats()
        assert sum(c.packets_forwarded for p in totals.participants for c in p.consumers) > 0
    finally:
        await room.close()


@pytest.mark.parametrize("send", SEND_CONFIGS)
async def test_loss_on_both_hops_is_counted_as_nacks_and_retransmissions(
    send: str,
) -> None:
    room = Room(SEND_CONFIGS[send])
    try:
        # Every 25th RTP packet is lost leaving the publisher and arriving at the subscriber.
        publisher = await room.join("teacher", audio=False, decode="none", loss_every=25)
        subscriber = await room.join(
            "student", video=False, audio=False, decode="none", loss_every=25
        )
        await wait_for(
            lambda: room.sink("student", "teacher", "video") is not None,
            timeout=8,
            what="the subscriber's video stream",
        )
        producer = _producer(room, "teacher", "video")
        consumer = _consumer(room, "student", producer)
        await wait_for(
            lambda: (
                consumer.stats().retransmissions >= 3
                and producer.stats().nacks_sent >= 3
                and subscriber.dropped >= 3
                and publisher.dropped >= 3
            ),
            timeout=8,
            what="NACKs and retransmissions on both hops",
        )
        up = producer.stats()
        assert up.nacks_sent >= 3
        down = consumer.stats()
        assert 0 < down.retransmissions <= down.nacks_received
        # Every packet the subscriber's aiortc receiver saw (retransmissions unwrapped) is
        # a first transmission or a retransmission that the injected loss let through.
        sink = _sink(room, "student", "teacher", "video")

        await wait_for(
            _balanced(consumer, subscriber, sink), timeout=2, what="sent - lost == received"
        )
        assert sink.losses == 0  # NACK/RTX repaired every loss in time
    finally:
        await room.close()


async def test_a_reused_m_section_counts_each_consumer_from_zero(room: Room) -> None:
    await room.join("first", audio=False, decode="none")
    await room.join("student", video=False, audio=False, decode="none")
    await wait_for(
        lambda: (s := room.sink("student", "first", "video")) is not None and s.frames >= 10,
        timeout=8,
        what="video from the first publisher",
    )
    old = _consumer(room, "student", _producer(room, "first", "video"))
    subscription = room.participants["student"].subscription
    offers = subscription.offers_sent
    await room.leave("first")
    assert old.closed
    frozen = old.stats()
    assert frozen.packets_forwarded > 0
    await wait_for(
        lambda: subscription.offers_sent > offers and subscription.phase == "stable",
        what="the m-section offered inactive and answered",
    )
    await room.join("second", audio=False, decode="none")
    await wait_for(
        lambda: (s := room.sink("student", "second", "video")) is not None and s.frames >= 10,
        timeout=8,
        what="video from the second publisher",
    )
    assert subscription.slot_count == 1  # the m-section was reused
    new = _consumer(room, "student", _producer(room, "second", "video"))
    sink = _sink(room, "student", "second", "video")
    await wait_for(_all_received(new, sink), timeout=2, what="the new consumer's own packets only")
    assert old.stats() == frozen  # a closed consumer's counts no longer move

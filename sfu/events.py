"""How the media plane reports upward: one listener per router.

The control plane subclasses `RouterListener` and overrides what it needs. Calls are
synchronous, on the event loop, and must not block (queue work instead). An exception
raised by a listener method is logged and swallowed: it never reaches the media path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sfu.ids import DisconnectReason, StreamLabel

if TYPE_CHECKING:
    from sfu.participant import Participant
    from sfu.producer import Producer
    from sfu.router import Router
    from sfu.stats import RouterStats

logger = logging.getLogger(__name__)


class RouterListener:
    """Events of one `Router`; every method is a no-op by default."""

    def on_participant_connected(self, participant: Participant) -> None:
        """Media is up for `participant` (ICE and DTLS of a peer connection connected)."""

    def on_participant_disconnected(
        self, participant: Participant, reason: DisconnectReason
    ) -> None:
        """Media is gone: ``"failed"`` (ICE/DTLS failed or consent lost) or ``"closed"``.

        Reported once per participant; ``"failed"`` may come without a prior
        `on_participant_connected` when media never came up.
        """

    def on_producer_added(self, producer: Producer) -> None:
        """A participant started publishing a track."""

    def on_producer_removed(self, producer: Producer) -> None:
        """A published track is gone (participant left, or it renegotiated it away)."""

    def on_subscribe_offer(
        self, participant: Participant, offer_sdp: str, streams: dict[str, StreamLabel]
    ) -> None:
        """Send this subscribe offer to the participant's client.

        `streams` maps each msid stream id of the offer to the publishing participant and
        the source it carries, so the client can label its tiles. Answer with
        `Participant.subscribe_answer`.
        """

    def on_keyframe_requested(self, producer: Producer) -> None:
        """A keyframe request (PLI) was sent to the publisher of `producer`."""

    def on_audio_level(self, producer: Producer, level_dbov: int, voice: bool) -> None:
        """Loudest audio level of `producer` over the last interval, in dBov (0 loudest,
        -127 silence), and whether the publisher flagged voice activity."""

    def on_stats(self, router: Router, stats: RouterStats) -> None:
        """Periodic statistics (see `MediaConfig.stats_interval`)."""


class SafeListener(RouterListener):
    """Wraps a listener so its exceptions are logged and never propagate."""

    def __init__(self, inner: RouterListener | None) -> None:
        self.inner = inner or RouterListener()

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            logger.exception("listener %s raised", getattr(method, "__qualname__", method))

    def on_participant_connected(self, participant: Participant) -> None:
        self._call(self.inner.on_participant_connected, participant)

    def on_participant_disconnected(
        self, participant: Participant, reason: DisconnectReason
    ) -> None:
        self._call(self.inner.on_participant_disconnected, participant, reason)

    def on_producer_added(self, producer: Producer) -> None:
        self._call(self.inner.on_producer_added, producer)

    def on_producer_removed(self, producer: Producer) -> None:
        self._call(self.inner.on_producer_removed, producer)

    def on_subscribe_offer(
        self, participant: Participant, offer_sdp: str, streams: dict[str, StreamLabel]
    ) -> None:
        self._call(self.inner.on_subscribe_offer, participant, offer_sdp, streams)

    def on_keyframe_requested(self, producer: Producer) -> None:
        self._call(self.inner.on_keyframe_requested, producer)

    def on_audio_level(self, producer: Producer, level_dbov: int, voice: bool) -> None:
        self._call(self.inner.on_audio_level, producer, level_dbov, voice)

    def on_stats(self, router: Router, stats: RouterStats) -> None:
        self._call(self.inner.on_stats, router, stats)

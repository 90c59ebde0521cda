"""Typed identifiers and small literal types shared across the media plane."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, NewType

RouterId = NewType("RouterId", str)
ParticipantId = NewType("ParticipantId", str)
ProducerId = NewType("ProducerId", str)
ConsumerId = NewType("ConsumerId", str)

MediaKind = Literal["audio", "video"]
PcName = Literal["publish", "subscribe"]
DisconnectReason = Literal["failed", "closed"]

AppData = dict[str, Any]
"""Free-form application fields (user id, role...) carried by every entity."""

TrackSource = Literal["microphone", "camera", "screen"]
"""What a published track carries: one stream per (participant, source) on the subscribe
side, whatever layer of it is forwarded."""
SOURCE_KIND: dict[str, MediaKind] = {"microphone": "audio", "camera": "video", "screen": "video"}
DEFAULT_SOURCE: dict[str, TrackSource] = {"audio": "microphone", "video": "camera"}
"""The source of a published m-section the publisher did not name."""


_SOURCES: dict[object, TrackSource] = {
    "microphone": "microphone",
    "camera": "camera",
    "screen": "screen",
}


def source_named(name: object, kind: str) -> TrackSource:
    """`name` if it is a source, else `kind`'s default (e.g. read from a file written
    before sources were recorded)."""
    return _SOURCES.get(name, DEFAULT_SOURCE["audio" if kind == "audio" else "video"])


TOP_LAYER = 1
"""The layer of a track published without one (a camera's ``high``); 0 is the lowest."""


class StreamLabel(NamedTuple):
    """Whose source one msid stream of a subscribe offer carries."""

    participant_id: ParticipantId
    source: TrackSource

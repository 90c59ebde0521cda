"""Typed identifiers and small literal types shared across the media plane."""

from __future__ import annotations

from typing import Any, Literal, NewType

RouterId = NewType("RouterId", str)
ParticipantId = NewType("ParticipantId", str)
ProducerId = NewType("ProducerId", str)
ConsumerId = NewType("ConsumerId", str)

MediaKind = Literal["audio", "video"]
PcName = Literal["publish", "subscribe"]
DisconnectReason = Literal["failed", "closed"]

AppData = dict[str, Any]
"""Free-form application fields (user id, role...) carried by every entity."""

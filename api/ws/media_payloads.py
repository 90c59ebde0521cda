"""Validation of the selective-forwarding payloads of the class WebSocket: the publish
offer's ``tracks`` and ``SUBSCRIPTION``. Pure functions: a payload in, typed values or
``InvalidRequest`` with the exact message clients see."""

from __future__ import annotations

from typing import Any

from sfu import TrackSpec

from ..errors import InvalidRequest
from ..rooms.allocation import Choice

LAYERS = {"high": 1, "low": 0}
"""A camera's layer names and the media plane's layer numbers."""
LAYER_NAMES = {number: name for name, number in LAYERS.items()}
SOURCES = ("microphone", "camera", "screen")

BAD_TRACKS = "Invalid payload: tracks must map mids to {source, layer?}"
BAD_SOURCE = "Invalid payload: tracks.{mid}.source must be 'microphone', 'camera' or 'screen'"
BAD_LAYER = "Invalid payload: tracks.{mid}.layer must be 'high' or 'low'"
LAYER_NOT_CAMERA = "Invalid payload: tracks.{mid}: only a camera has layers"
BAD_SUBSCRIPTION = "Invalid payload: SUBSCRIPTION maps user ids to {camera?, screen?, microphone?}"
BAD_CAMERA = "Invalid payload: {user}.camera must be 'high', 'low' or 'off'"
BAD_SWITCH = "Invalid payload: {user}.{source} must be 'on' or 'off'"
TOO_MANY_USERS = "Invalid payload: SUBSCRIPTION names more than {limit} users"
_MAX_MID = 64


def parse_tracks(data: dict[str, Any]) -> dict[str, TrackSpec] | None:
    """The ``tracks`` of a publish ``WEBRTC_OFFER`` (None when absent: every audio
    m-section is a microphone, every video one a camera's high layer)."""
    tracks = data.get("tracks")
    if tracks is None:
        return None
    if not isinstance(tracks, dict) or len(tracks) > _MAX_MID:
        raise InvalidRequest(BAD_TRACKS)
    specs: dict[str, TrackSpec] = {}
    for mid, spec in tracks.items():
        if not isinstance(spec, dict) or not mid or len(mid) > _MAX_MID:
            raise InvalidRequest(BAD_TRACKS)
        shown = mid if mid.isprintable() else repr(mid)
        source = spec.get("source")
        if source not in SOURCES:
            raise InvalidRequest(BAD_SOURCE.format(mid=shown))
        layer = spec.get("layer")
        if layer is None:
            specs[mid] = TrackSpec(source)
            continue
        if source != "camera":
            raise InvalidRequest(LAYER_NOT_CAMERA.format(mid=shown))
        if layer not in LAYERS:
            raise InvalidRequest(BAD_LAYER.format(mid=shown))
        specs[mid] = TrackSpec(source, LAYERS[layer])
    return specs


def parse_subscription(data: dict[str, Any], max_users: int) -> dict[str, dict[str, Choice]]:
    """A ``SUBSCRIPTION`` payload: ``{userId: {camera?, screen?, microphone?}}``."""
    if not isinstance(data, dict):
        raise InvalidRequest(BAD_SUBSCRIPTION)
    if len(data) > max_users:
        raise InvalidRequest(TOO_MANY_USERS.format(limit=max_users))
    parsed: dict[str, dict[str, Choice]] = {}
    for user, wanted in data.items():
        if not isinstance(wanted, dict) or not user or set(wanted) - set(SOURCES):
            raise InvalidRequest(BAD_SUBSCRIPTION)
        shown = user if user.isprintable() and len(user) <= 64 else repr(user[:64])
        choices: dict[str, Choice] = {}
        for source, value in wanted.items():
            if source == "camera":
                if value not in ("high", "low", "off"):
                    raise InvalidRequest(BAD_CAMERA.format(user=shown))
            elif value not in ("on", "off"):
                raise InvalidRequest(BAD_SWITCH.format(user=shown, source=source))
            choices[source] = value
        parsed[user] = choices
    return parsed

"""Validation of the selective-forwarding payloads of the class WebSocket: the publish
offer's ``tracks`` and ``SUBSCRIPTION``. Pure functions: a payload in, typed values or
``InvalidRequest`` with the exact message clients see."""

from __future__ import annotations

from typing import Any, NamedTuple

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
BAD_SUBSCRIPTION = (
    "Invalid payload: SUBSCRIPTION maps user ids to {camera?, screen?, microphone?, fps?}"
)
BAD_CAMERA = "Invalid payload: {user}.camera must be 'high', 'low' or 'off'"
BAD_SWITCH = "Invalid payload: {user}.{source} must be 'on' or 'off'"
TOO_MANY_USERS = "Invalid payload: SUBSCRIPTION names more than {limit} users"
BAD_FPS = "Invalid payload: {user}.fps maps camera or screen to frames per second"
BAD_FPS_VALUE = "Invalid payload: {user}.fps.{source} must be a number above 0, or null"
FPS_SOURCES = ("camera", "screen")
MAX_FPS = 240.0
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
        if not isinstance(layer, str) or layer not in LAYERS:  # a list or object is unhashable
            raise InvalidRequest(BAD_LAYER.format(mid=shown))
        specs[mid] = TrackSpec(source, LAYERS[layer])
    return specs


class Subscription(NamedTuple):
    """A parsed ``SUBSCRIPTION``: per user, the choice per source and the frame-rate cap
    per video source (None: the cap is lifted)."""

    choices: dict[str, dict[str, Choice]]
    frame_rates: dict[str, dict[str, float | None]]


def parse_subscription(data: dict[str, Any], max_users: int) -> Subscription:
    """A ``SUBSCRIPTION`` payload: ``{userId: {camera?, screen?, microphone?, fps?}}``."""
    if not isinstance(data, dict):
        raise InvalidRequest(BAD_SUBSCRIPTION)
    if len(data) > max_users:
        raise InvalidRequest(TOO_MANY_USERS.format(limit=max_users))
    parsed = Subscription({}, {})
    for user, wanted in data.items():
        if not isinstance(wanted, dict) or not user or set(wanted) - {*SOURCES, "fps"}:
            raise InvalidRequest(BAD_SUBSCRIPTION)
        shown = user if user.isprintable() and len(user) <= 64 else repr(user[:64])
        choices: dict[str, Choice] = {}
        for source, value in wanted.items():
            if source == "fps":
                parsed.frame_rates[user] = _frame_rates(value, shown)
            elif source == "camera":
                if value not in ("high", "low", "off"):
                    raise InvalidRequest(BAD_CAMERA.format(user=shown))
                choices[source] = value
            elif value not in ("on", "off"):
                raise InvalidRequest(BAD_SWITCH.format(user=shown, source=source))
            else:
                choices[source] = value
        parsed.choices[user] = choices
    return parsed


def _frame_rates(value: object, user: str) -> dict[str, float | None]:
    if not isinstance(value, dict) or set(value) - set(FPS_SOURCES):
        raise InvalidRequest(BAD_FPS.format(user=user))
    rates: dict[str, float | None] = {}
    for source, fps in value.items():
        if fps is None:
            rates[source] = None
            continue
        number = isinstance(fps, int | float) and not isinstance(fps, bool)
        if not number or not 0 < fps <= MAX_FPS:
            raise InvalidRequest(BAD_FPS_VALUE.format(user=user, source=source))
        rates[source] = float(fps)
    return rates

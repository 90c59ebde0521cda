"""Trickled ICE candidates from clients (``WEBRTC_ICE_CANDIDATE``) into aiortc."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from sfu.errors import InvalidCandidate


async def add_ice_candidate(pc: RTCPeerConnection, candidate: Mapping[str, Any] | None) -> None:
    """Add a browser-style candidate ``{candidate, sdpMid, sdpMLineIndex}``.

    `None` or an empty ``candidate`` string means end-of-candidates. Raises
    `InvalidCandidate` for anything malformed.
    """
    text = None if candidate is None else candidate.get("candidate")
    if not text:
        await pc.addIceCandidate(None)
        return
    if not isinstance(text, str):
        raise InvalidCandidate.about_input("candidate must be a string")
    if text.startswith("a="):
        text = text[2:]
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    assert candidate is not None
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise InvalidCandidate.about_input("sdpMid must be a string")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise InvalidCandidate.about_input("sdpMLineIndex must be a non-negative integer")
    if mid is None and index is None:
        raise InvalidCandidate.about_input("candidate needs sdpMid or sdpMLineIndex")
    try:
        parsed = candidate_from_sdp(text)
    except Exception as exc:  # aiortc asserts on too few fields, int() on bad numbers...
        raise InvalidCandidate(
            f"malformed candidate {text!r}: {type(exc).__name__}", reason="malformed candidate"
        ) from None
    parsed.sdpMid = mid
    parsed.sdpMLineIndex = index
    try:
        await pc.addIceCandidate(parsed)
    except ValueError as exc:
        raise InvalidCandidate(str(exc)) from None

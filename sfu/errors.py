"""Errors of the media plane, named after what went wrong.

The control plane maps them to its own error hierarchy; none of them ever leaves a
`Router` in a broken state.
"""

from __future__ import annotations

from typing import Self


class SfuError(Exception):
    """Base of every error raised by `sfu`.

    The message is for the server's log and may quote aiortc. `reason`, when set, is
    written by `sfu` itself about what the caller sent (e.g. "offer m-section 1 (video)
    offers VP9; the server forwards VP8, H264 only") and is safe to show to the client
    whose input it describes.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason

    @classmethod
    def about_input(cls, reason: str) -> Self:
        """An error whose whole text describes the caller's own input (shown to it)."""
        return cls(reason, reason=reason)


class InvalidSdp(SfuError):
    """An offer or answer could not be parsed or cannot be applied."""


class InvalidCandidate(InvalidSdp):
    """A trickled ICE candidate is malformed or cannot be added."""


class InvalidState(SfuError):
    """The call is not allowed in the current state (e.g. an answer nobody asked for)."""


class Closed(InvalidState):
    """The object (router, participant, producer or consumer) is already closed."""


class AdapterError(SfuError):
    """aiortc / aioice internals are not what `sfu.aiortc_adapter` was written against.

    An operator's problem (wrong aiortc version installed), never the client's: the
    control plane answers it as an internal error without its text.
    """

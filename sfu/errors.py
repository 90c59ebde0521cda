"""Errors of the media plane, named after what went wrong.

The control plane maps them to its own error hierarchy; none of them ever leaves a
`Router` in a broken state.
"""

from __future__ import annotations


class SfuError(Exception):
    """Base of every error raised by `sfu`."""


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

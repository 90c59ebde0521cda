"""The one translation of media-plane errors (``sfu.SfuError``) into client errors.

Both the HTTP error middleware and the WebSocket event router call :func:`media_error`.
A client is told what was wrong in the words of what it asked for, followed by the media
plane's `reason` when it has one (text `sfu` wrote about the client's own SDP or candidate,
e.g. ": offer m-section 1 (video) offers VP9; the server forwards VP8, H264 only"); the
media plane's message (which may quote aiortc or name exception classes) goes to the
server log only.

=======================================  ======  ==========================================
``sfu`` error                            status  message
=======================================  ======  ==========================================
``InvalidCandidate``                     400     :data:`INVALID_CANDIDATE` [: reason]
``InvalidSdp``                           400     :data:`INVALID_SDP` for the operation [: reason]
``Closed``                               409     :data:`MEDIA_CLOSED`
``InvalidState``                         409     the operation's ``out_of_turn`` message
``AdapterError``, any other ``SfuError``  500     ``Internal server error``
=======================================  ======  ==========================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sfu import Closed, InvalidCandidate, InvalidSdp, InvalidState, SfuError

from .errors import INTERNAL_ERROR, ApiError, Conflict, InternalError, InvalidRequest

log = logging.getLogger(__name__)

INVALID_SDP = "Invalid SDP: {subject} could not be applied"
INVALID_CANDIDATE = "Invalid ICE candidate: it could not be added"
MEDIA_CLOSED = "Media connection is closed; join the room again"
NOT_NOW = "Not possible in the media connection's current state"


@dataclass(frozen=True)
class MediaOperation:
    """What a client asked the media plane to do, in the words its errors use."""

    subject: str
    """What the client sent, as in "Invalid SDP: publish offer could not be applied"."""
    out_of_turn: str
    """The message when the media plane is not in a state to take it (``InvalidState``)."""


PUBLISH_OFFER = MediaOperation(
    "publish offer", "Unexpected publish offer: the publish connection cannot take one now"
)
SUBSCRIBE_ANSWER = MediaOperation(
    "subscribe answer", "Unexpected subscribe answer: no subscribe offer is outstanding"
)
ICE_CANDIDATE = MediaOperation(
    "ICE candidate", "Unexpected ICE candidate: that connection has not been negotiated yet"
)


def media_error(error: SfuError, operation: MediaOperation | None = None) -> ApiError:
    """The client error for ``error``, raised while doing ``operation`` (if known)."""
    subject = operation.subject if operation is not None else "session description"
    mapped: ApiError
    # Subclasses first: InvalidCandidate is an InvalidSdp, Closed an InvalidState.
    # `reason` is sfu's own description of what the client sent (no aiortc text).
    because = f": {error.reason}" if error.reason else ""
    if isinstance(error, InvalidCandidate):
        mapped = InvalidRequest(INVALID_CANDIDATE + because)
    elif isinstance(error, InvalidSdp):
        mapped = InvalidRequest(INVALID_SDP.format(subject=subject) + because)
    elif isinstance(error, Closed):
        mapped = Conflict(MEDIA_CLOSED)
    elif isinstance(error, InvalidState):
        mapped = Conflict(operation.out_of_turn if operation is not None else NOT_NOW)
    else:
        log.error("media plane failed (%s): %s", type(error).__name__, error, exc_info=error)
        return InternalError(INTERNAL_ERROR)
    log.info("%s refused (%s): %s", subject, type(error).__name__, error)
    return mapped

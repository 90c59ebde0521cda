"""A store that cannot be reached is an outage the client is told about, not a server
bug: the errors of the backends' drivers that mean "unreachable now" become
`ServiceUnavailable` (503, or an ``ERROR`` on the WebSocket) with one message."""

from __future__ import annotations

from pymongo.errors import ConnectionFailure

from ..errors import ApiError, ServiceUnavailable

STORE_UNAVAILABLE = "Storage unavailable, try again shortly"


def outage_error(error: BaseException) -> ApiError | None:
    """The client error for `error` if it says the store is unreachable, else None.

    `ConnectionFailure` covers the driver's server selection timeout, lost connections
    (``AutoReconnect``) and network timeouts; the client reconnects on its own once the
    store is back, so the next request after that succeeds.
    """
    if isinstance(error, ConnectionFailure):
        return ServiceUnavailable(STORE_UNAVAILABLE)
    return None

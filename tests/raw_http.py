"""Raw TCP HTTP/1.1 for the tests that must control every byte (slow clients, connection
caps): read one response, and close a connection so its socket is really closed before the
test's event loop goes away."""

from __future__ import annotations

import asyncio
import contextlib


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of the next response on ``reader``."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close and wait: ``close()`` alone leaves the socket to a loop callback, and a test
    that ends first leaves it to the garbage collector (a ResourceWarning in a later test)."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()

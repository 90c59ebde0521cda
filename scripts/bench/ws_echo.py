"""A bare aiohttp WebSocket server that answers every JSON frame with one JSON frame, as the
class WebSocket answers an unknown event: the floor under the cost of any event
(``scripts.bench_ws_events``). ``python -m scripts.bench.ws_echo PORT``"""

from __future__ import annotations

import json
import sys

from aiohttp import WSMsgType, web


async def _echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            event = json.loads(message.data).get("event")
            error = {"message": "Unknown event", "event": event}
            await ws.send_str(json.dumps({"event": "ERROR", "data": error}, separators=(",", ":")))
    return ws


def main() -> None:
    app = web.Application()
    app.router.add_get("/ws", _echo)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()

"""``python -m api`` / ``classroom-sfu``: validate the environment, then serve."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from .app import create_app
from .config import ConfigError, load_settings, publishers_per_frame


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"classroom-sfu: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    fits = publishers_per_frame(settings.ws_max_frame_bytes)
    if settings.room_max_participants - 1 > fits:
        logging.getLogger("api").warning(
            "ROOM_MAX_PARTICIPANTS=%d: a subscriber's SDP answer outgrows WS_MAX_FRAME_BYTES=%d "
            "once more than ~%d others publish audio and video (its socket is closed, 1009); "
            "raise WS_MAX_FRAME_BYTES for such rooms",
            settings.room_max_participants,
            settings.ws_max_frame_bytes,
            fits,
        )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda line: logging.getLogger("api").info("%s", line),
    )


if __name__ == "__main__":
    main()

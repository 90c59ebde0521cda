"""``python -m api`` / ``classroom-sfu``: read the flags and the environment, validate, serve.

Every setting is an environment variable (README, Configuration); the common ones also
have a flag, which overrides its variable. A bad flag or value ends the program with one
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .cli import OneLineParser, distribution_version

PROG = "classroom-sfu"


@dataclass(frozen=True)
class Flag:
    """One command-line flag standing for one environment variable."""

    flag: str
    env: str
    metavar: str
    help: str


FLAGS = (
    Flag("--host", "HOST", "ADDRESS", "address to listen on (default 0.0.0.0)"),
    Flag("--port", "PORT", "PORT", "HTTP port (default 3000)"),
    Flag("--data-dir", "DATA_DIR", "DIR", "SQLite database and JWT signing key (default ./data)"),
    Flag(
        "--mongodb-uri",
        "MONGODB_URI",
        "URI",
        "use MongoDB instead of SQLite, e.g. mongodb://localhost:27017",
    ),
    Flag("--mongodb-db", "MONGODB_DB", "NAME", "MongoDB database name (default attendance)"),
    Flag(
        "--recordings-dir",
        "RECORDINGS_DIR",
        "DIR",
        "recorded and composed files (default DATA_DIR/recordings)",
    ),
    Flag(
        "--ice-addresses",
        "ICE_ADDRESSES",
        "IPS",
        "comma-separated IPs the server gathers ICE candidates on (default: every local address)",
    ),
    Flag(
        "--ice-announced-address",
        "ICE_ANNOUNCED_ADDRESS",
        "IP",
        "public IP announced in the server's host candidates (1:1 NAT)",
    ),
    Flag("--log-level", "LOG_LEVEL", "LEVEL", "DEBUG, INFO, WARNING or ERROR (default INFO)"),
)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        description="Server-side WebRTC SFU for online classrooms with presence-based "
        "attendance: serves the REST API, the class WebSocket and the web page.",
        epilog="Each flag overrides the environment variable in brackets; every other "
        "setting (Auth0, TURN, room and recording limits, metrics) is read from the "
        "environment only, as listed in docs/configuration.md.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {distribution_version()}")
    for flag in FLAGS:
        p.add_argument(
            flag.flag, dest=flag.env, metavar=flag.metavar, help=f"{flag.help} [{flag.env}]"
        )
    return p


def environment(
    argv: Sequence[str] | None, base: Mapping[str, str]
) -> tuple[dict[str, str], set[str]]:
    """``base`` with the given flags' values in place of their variables, and the names of
    the variables a flag set; exits with code 2 on a bad flag or an empty value."""
    p = parser()
    args = vars(p.parse_args(argv))
    given = {name: value for name, value in args.items() if value is not None}
    for flag in FLAGS:
        if flag.env in given and not given[flag.env].strip():
            p.error(f"argument {flag.flag}: needs a value")
    return {**base, **given}, set(given)


def _flag_names(message: str, given: set[str]) -> str:
    """A validation message about a variable a flag set names the flag instead."""
    for flag in FLAGS:
        if flag.env in given and message.startswith(f"{flag.env} "):
            return flag.flag + message[len(flag.env) :]
    return message


def main(argv: Sequence[str] | None = None) -> None:
    env, given = environment(argv, os.environ)
    # Imported after the flags: --help and --version answer without loading the server.
    from .app import create_app
    from .config import ConfigError, load_settings, publishers_per_frame
    from .connections import ConnectionCap, serve
    from .metrics import METRICS

    try:
        settings = load_settings(env)
    except ConfigError as error:
        print(f"{PROG}: configuration error: {_flag_names(str(error), given)}", file=sys.stderr)
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
    cap = ConnectionCap(
        settings.http_max_connections,
        settings.http_max_connections_per_address,
        settings.trusted_proxies,
    )
    app = create_app(settings)
    app[METRICS].watch_connections(cap)
    serve(
        app,
        host=settings.host,
        port=settings.port,
        cap=cap,
        announce=lambda line: logging.getLogger("api").info("%s", line),
        keepalive_timeout=settings.http_keepalive_seconds,
    )


if __name__ == "__main__":
    main()

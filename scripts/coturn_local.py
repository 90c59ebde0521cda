"""Run coturn (Debian ``coturn``, ``/usr/bin/turnserver``) for local use and for tests.

    python -m scripts.coturn_local [--port 3478] [--listen-ip 127.0.0.1]

writes a generated ``turnserver.conf`` into a temporary directory (loopback, no TLS unless
`CoturnConfig` names a certificate, TURN REST credentials from a random shared secret,
loopback peers allowed so a server on 127.0.0.1 can be relayed to), starts ``turnserver``
on it, prints the environment lines the classroom server needs (``TURN_URLS``,
``TURN_SECRET``), and stops coturn by its PID on Ctrl-C. Production settings are described
in docs/deploy.md.

Tests use `LocalCoturn` directly: ``with LocalCoturn(CoturnConfig(...), workdir) as turn:``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

TURNSERVER = Path("/usr/bin/turnserver")
_MAGIC_COOKIE = 0x2112A442
_BINDING_REQUEST = 0x0001
_BINDING_SUCCESS = 0x0101


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on `host` (TURN listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")


@dataclass(frozen=True)
class CoturnConfig:
    """What the generated ``turnserver.conf`` says."""

    listen_ip: str = "127.0.0.1"
    port: int = 3478
    relay_ip: str | None = None
    """Address relayed traffic leaves from (default: `listen_ip`)."""
    min_port: int = 49160
    max_port: int = 49359
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    realm: str = "classroom.local"
    allow_loopback_peers: bool = True
    """Needed when the peer (the classroom server) is on 127.0.0.1: without it coturn
    answers CreatePermission with 403 and clients hang. Never in production."""
    tls_port: int | None = None
    """Also listen for TURN over TLS (``turns:``) on this TCP port, with `tls_cert` and
    `tls_key` (PEM files)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def lines(self, workdir: Path) -> list[str]:
        """The ``turnserver.conf`` lines (one option per line, as coturn reads them)."""
        lines = [
            f"listening-ip={self.listen_ip}",
            f"listening-port={self.port}",
            f"relay-ip={self.relay_ip or self.listen_ip}",
            f"min-port={self.min_port}",
            f"max-port={self.max_port}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            f"realm={self.realm}",
            "fingerprint",
            "no-cli",
            "no-dtls",
            "no-multicast-peers",
            "no-software-attribute",
            f"userdb={workdir / 'turndb.sqlite'}",
            f"pidfile={workdir / 'turnserver.pid'}",
            f"log-file={workdir / 'turnserver.log'}",
            "simple-log",
        ]
        if self.allow_loopback_peers:
            lines.append("allow-loopback-peers")
        if self.tls_port is not None and self.tls_cert is not None and self.tls_key is not None:
            lines += [
                f"tls-listening-port={self.tls_port}",
                f"cert={self.tls_cert}",
                f"pkey={self.tls_key}",
            ]
        else:
            lines.append("no-tls")
        return lines

    def urls(self, host: str | None = None) -> tuple[str, ...]:
        """TURN URLs over UDP and TCP (and TLS, when configured) for clients reaching
        coturn at `host`."""
        where = f"{host or self.listen_ip}:{self.port}"
        urls = [f"turn:{where}?transport=udp", f"turn:{where}?transport=tcp"]
        if self.tls_port is not None:
            urls.append(f"turns:{host or self.listen_ip}:{self.tls_port}?transport=tcp")
        return tuple(urls)

    def env(self, host: str | None = None) -> dict[str, str]:
        """The classroom server's environment for this coturn."""
        return {"TURN_URLS": ",".join(self.urls(host)), "TURN_SECRET": self.secret}


class LocalCoturn:
    """One ``turnserver`` child process with a generated configuration.

    ``start()`` returns once coturn answers a STUN Binding request; ``stop()`` sends
    SIGTERM to its PID (SIGKILL if it lingers). Also a context manager.
    """

    def __init__(self, config: CoturnConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "turnserver.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "turnserver.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(self.config.lines(self.workdir)) + "\n")
        self.config_path.chmod(0o600)  # it holds the shared secret
        return self.config_path

    def start(self, timeout: float = 10.0) -> None:
        if not TURNSERVER.exists():
            raise RuntimeError(f"{TURNSERVER} is missing: apt-get install coturn")
        self.write_config()
        with (self.workdir / "turnserver.out").open("ab") as out:
            self.process = subprocess.Popen(
                [str(TURNSERVER), "-c", str(self.config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not stun_binding(self.config.listen_ip, self.config.port, timeout=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                self.stop()
                raise RuntimeError(f"coturn did not start: {log[-1500:]}")

    def stop(self) -> None:
        """Stop coturn by its PID; idempotent."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> LocalCoturn:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def stun_binding(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a STUN Binding request to ``host:port`` (UDP) gets a success answer."""
    transaction = os.urandom(12)
    request = struct.pack("!HHI", _BINDING_REQUEST, 0, _MAGIC_COOKIE) + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            data = sock.recv(2048)
        except OSError:
            return False
    return (
        len(data) >= 20
        and struct.unpack("!H", data[:2])[0] == _BINDING_SUCCESS
        and data[8:20] == transaction
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run coturn locally for the classroom SFU.")
    parser.add_argument("--listen-ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3478, help="0 picks a free port")
    parser.add_argument("--min-port", type=int, default=49160, help="relay port range start")
    parser.add_argument("--max-port", type=int, default=49359, help="relay port range end")
    args = parser.parse_args(argv)
    port = args.port or free_port(args.listen_ip)
    config = CoturnConfig(
        listen_ip=args.listen_ip, port=port, min_port=args.min_port, max_port=args.max_port
    )
    workdir = Path(tempfile.mkdtemp(prefix="coturn-"))
    coturn = LocalCoturn(config, workdir)
    stop = False

    def interrupted(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, interrupted)
    try:
        coturn.start()
        print(f"# coturn pid {coturn.pid}, config and log in {workdir}", file=sys.stderr)
        for name, value in config.env().items():
            print(f"export {name}={value}")
        print("# Ctrl-C stops coturn", file=sys.stderr)
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while not stop and coturn.process is not None and coturn.process.poll() is None:
                time.sleep(0.5)
    finally:
        coturn.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two network namespaces joined by a veth pair whose one direction can be shaped with
``tc``: the weak-network benchmark's link between a server and one subscriber.

    server namespace  10.68.0.1  (veth0) -- veth -- (veth0) 10.68.0.2  subscriber namespace

`cap(kbit)` puts a token bucket (``tc qdisc ... tbf``) on the server end's egress: what
the server sends to the subscriber, i.e. the subscriber's downlink. `lift()` removes it.
Both namespaces are made here (``ip netns add``) and deleted by `close()`; the host's own
namespace is never changed. `entered_server()` moves the calling thread (an event loop's)
into the server namespace with ``setns(2)``, so sockets and child processes made
meanwhile live there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

SERVER_ADDRESS = "10.68.0.1"
SUBSCRIBER_ADDRESS = "10.68.0.2"
INTERFACE = "veth0"
_CLONE_NEWNET = 0x40000000


def available() -> bool:
    """Root, ``ip`` and ``tc``: what the shaped link needs."""
    return (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("ip") is not None
        and shutil.which("tc") is not None
    )


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


@dataclass
class ShapedLink:
    """The two namespaces and the veth pair between them (`create`, then `close`)."""

    server_ns: str
    subscriber_ns: str
    capped_kbit: int | None = None

    @classmethod
    def create(cls, tag: str = "weak") -> ShapedLink:
        base = f"{tag}-{os.getpid()}"
        link = cls(f"{base}-srv", f"{base}-sub")
        try:
            for name in (link.server_ns, link.subscriber_ns):
                _run("ip", "netns", "add", name)
                _run("ip", "-n", name, "link", "set", "lo", "up")
            _run(
                "ip", "-n", link.server_ns, "link", "add", INTERFACE, "type", "veth",
                "peer", "name", "veth1", "netns", link.subscriber_ns,
            )  # fmt: skip
            _run("ip", "-n", link.subscriber_ns, "link", "set", "veth1", "name", INTERFACE)
            for name, address in (
                (link.server_ns, SERVER_ADDRESS),
                (link.subscriber_ns, SUBSCRIBER_ADDRESS),
            ):
                _run("ip", "-n", name, "addr", "add", f"{address}/24", "dev", INTERFACE)
                _run("ip", "-n", name, "link", "set", INTERFACE, "up")
        except BaseException:
            link.close()
            raise
        return link

    def subscriber_command(self, *argv: str) -> list[str]:
        """`argv` run inside the subscriber's namespace."""
        return ["ip", "netns", "exec", self.subscriber_ns, *argv]

    def cap(self, kbit: int, burst: str = "16kb", latency: str = "50ms") -> None:
        """Shape the subscriber's downlink to `kbit` kbit/s (a token bucket whose queue
        holds `latency` worth of packets beyond the `burst`; the rest is dropped)."""
        _run(
            "tc", "-n", self.server_ns, "qdisc", "replace", "dev", INTERFACE, "root", "tbf",
            "rate", f"{kbit}kbit", "burst", burst, "latency", latency,
        )  # fmt: skip
        self.capped_kbit = kbit

    def lift(self) -> None:
        """Remove the shaping (the link is as fast as the machine again)."""
        if self.capped_kbit is not None:
            _run("tc", "-n", self.server_ns, "qdisc", "del", "dev", INTERFACE, "root")
            self.capped_kbit = None

    @contextlib.contextmanager
    def entered_server(self) -> Iterator[None]:
        """Run the calling thread inside the server namespace until the block ends."""
        libc = ctypes.CDLL(None, use_errno=True)
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.server_ns}", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the server namespace failed")
            try:
                yield
            finally:
                if libc.setns(original, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
        finally:
            os.close(target)
            os.close(original)

    def close(self) -> None:
        """Delete both namespaces (the veth pair goes with them)."""
        for name in (self.subscriber_ns, self.server_ns):
            with contextlib.suppress(RuntimeError):
                _run("ip", "netns", "delete", name)

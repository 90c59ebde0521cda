"""Network namespaces the tests create, and a way into them for this process.

Everything here stays inside namespaces made for the test: ``ip netns add`` makes them,
a veth pair joins two of them (both ends inside them, addresses picked here), and
``nft`` restricts one of them. The host's own namespace is never changed.

`entered(ns)` moves the calling thread (the test's event loop) into a namespace with
``setns(2)``, so servers, clients and child processes started meanwhile live there; the
original namespace is restored on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_names = itertools.count(1)


def available() -> bool:
    """Root, ``ip`` and ``nft``: what these tests need to build their networks."""
    return (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("ip") is not None
        and shutil.which("nft") is not None
    )


def _run(*command: str, stdin: str | None = None) -> None:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


@dataclass
class Namespace:
    """One named network namespace (``ip netns``), loopback up."""

    name: str

    @classmethod
    def create(cls, role: str) -> Namespace:
        namespace = cls(f"csfu-{os.getpid()}-{next(_names)}-{role}")
        _run("ip", "netns", "add", namespace.name)
        namespace.ip("link", "set", "lo", "up")
        return namespace

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def ip(self, *args: str) -> None:
        _run("ip", "-n", self.name, *args)

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside this namespace (``ip netns exec``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def nft(self, ruleset: str) -> None:
        _run(*self.command("nft", "-f", "-"), stdin=ruleset)

    def delete(self) -> None:
        with contextlib.suppress(RuntimeError):
            _run("ip", "netns", "delete", self.name)


def link(a: Namespace, a_address: str, b: Namespace, b_address: str, prefix: int = 24) -> None:
    """A veth pair between `a` and `b` with these addresses (ends named ``veth0`` in both)."""
    a.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b.name)
    b.ip("link", "set", "veth1", "name", "veth0")
    for namespace, address in ((a, a_address), (b, b_address)):
        namespace.ip("addr", "add", f"{address}/{prefix}", "dev", "veth0")
        namespace.ip("link", "set", "veth0", "up")


def allow_only_tcp(namespace: Namespace, server: str, ports: Sequence[int]) -> None:
    """A restrictive network: every UDP datagram is dropped (in and out, loopback too);
    the only traffic allowed out is TCP to `server` on `ports` (web and TURN)."""
    port_set = ", ".join(str(p) for p in ports)
    namespace.nft(
        f"""
table inet restrictive {{
  chain output {{
    type filter hook output priority 0; policy drop;
    meta l4proto udp drop
    oif "lo" accept
    ip daddr {server} tcp dport {{ {port_set} }} accept
  }}
  chain input {{
    type filter hook input priority 0; policy drop;
    meta l4proto udp drop
    iif "lo" accept
    ip saddr {server} tcp sport {{ {port_set} }} ct state established accept
  }}
}}
"""
    )


@contextlib.contextmanager
def entered(namespace: Namespace) -> Iterator[None]:
    """Run the calling thread inside `namespace` until the block ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(namespace.path, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
        try:
            yield
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
    finally:
        os.close(target)
        os.close(original)

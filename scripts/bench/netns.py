"""A private network namespace for the benchmark, with a veth pair for Janus.

Janus never gathers ICE candidates on loopback, so the benchmark gives it a veth pair
(``vb0`` 10.77.0.1, ``vb1`` 10.77.0.2) inside a namespace of its own; nothing leaves it.
Traffic between two local addresses is routed through ``lo`` by the kernel, so every
system pays the same network path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SERVER_ADDRESS = "10.77.0.1"
CLIENT_ADDRESS = "10.77.0.2"
SERVER_INTERFACE = "vb0"
INSIDE_FLAG = "--inside-netns"


def can_unshare() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("unshare") is not None


def reexec_inside(module: str, argv: Sequence[str]) -> None:
    """Replace this process with ``python -m module argv... --inside-netns`` in a new
    network namespace (never returns)."""
    command = ["unshare", "-n", sys.executable, "-m", module, *argv, INSIDE_FLAG]
    os.execvp("unshare", command)


def setup_links() -> None:
    """Inside the fresh namespace: loopback up, and the veth pair with both addresses."""
    for command in (
        "ip link set lo up",
        f"ip link add {SERVER_INTERFACE} type veth peer name vb1",
        f"ip addr add {SERVER_ADDRESS}/24 dev {SERVER_INTERFACE}",
        f"ip addr add {CLIENT_ADDRESS}/24 dev vb1",
        f"ip link set {SERVER_INTERFACE} up",
        "ip link set vb1 up",
    ):
        subprocess.run(command.split(), check=True)
    # Janus binds its ICE sockets to vb0, so its packets cross the veth pair and arrive
    # on vb1 with a local source address, which Linux drops unless told otherwise.
    for interface in ("all", "default", SERVER_INTERFACE, "vb1"):
        for name, value in (("accept_local", "1"), ("rp_filter", "0")):
            Path(f"/proc/sys/net/ipv4/conf/{interface}/{name}").write_text(value)

"""The per-packet floor: SRTP-protect an RTP packet and ``sendto`` it, in a tight loop.

No forwarding logic at all: what one core pays per 1100-byte video packet for the two
things every SFU must do per packet and subscriber. Also the two halves alone, to show
where the time goes. Run as a worker process pinned to the server core::

    python -m scripts.bench.floor --cpu 0 --host 127.0.0.1 --port 40000 --seconds 3

prints one JSON line. `run_floor` starts it and drains the packets on this side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from pylibsrtp import Policy, Session

PAYLOAD_BYTES = 1100


def _loop(seconds: float, protect: bool, send: bool, target: tuple[str, int]) -> dict[str, float]:
    policy = Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    session = Session(policy=policy)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    header = bytearray(12)
    payload = os.urandom(PAYLOAD_BYTES)
    packet = bytes(12) + payload
    sent = 0
    seq = 0
    cpu_start = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(256):
            seq = (seq + 1) & 0xFFFF
            struct.pack_into("!BBHII", header, 0, 0x80, 96, seq, seq * 3000, 0x1234)
            packet = bytes(header) + payload
            if protect:
                packet = session.protect(packet)
            if send:
                sock.sendto(packet, target)
            sent += 1
    cpu = time.process_time() - cpu_start
    sock.close()
    return {"packets": sent, "cpu_s": cpu, "us_per_packet": cpu / sent * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    target = (args.host, args.port)
    result = {
        "protect_and_send": _loop(args.seconds, True, True, target),
        "protect_only": _loop(args.seconds / 2, True, False, target),
        "send_only": _loop(args.seconds / 2, False, True, target),
    }
    print(json.dumps(result), flush=True)


def _drain(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    buffer = bytearray(2048)
    while not stop.is_set():
        try:
            sock.recv_into(buffer)
        except TimeoutError:
            continue
        except OSError:
            return


async def run_floor(cpu: int | None, address: str, seconds: float = 3.0) -> dict[str, Any]:
    """Run the floor worker pinned to ``cpu``, sending to a socket drained here."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((address, 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    stop = threading.Event()
    drainer = threading.Thread(target=_drain, args=(sink, stop), daemon=True)
    drainer.start()
    command = [sys.executable, "-m", "scripts.bench.floor", "--host", address]
    command += ["--port", str(sink.getsockname()[1]), "--seconds", str(seconds)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    try:
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        out, _ = await process.communicate()
    finally:
        stop.set()
        drainer.join(timeout=2)
        sink.close()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    main()

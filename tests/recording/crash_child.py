"""Child process of the crash test: records one publisher until it is killed.

Prints `recording <seconds>` lines while it records, so the parent knows when to kill it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from scripts.support.loopback import Room, wait_for
from sfu.recorder import Recorder


async def main(directory: Path) -> None:
    room = Room()
    await room.join("alice")
    await wait_for(lambda: len(room.router.producers) == 2, timeout=10, what="producers")
    recorder = Recorder(directory)
    for producer in room.router.producers.values():
        recorder.add_producer(producer, {"user_id": "user-alice"})
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.1)
        print(f"recording {time.monotonic() - started:.3f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

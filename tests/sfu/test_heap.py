"""Freed C heap goes back to the system (glibc's malloc_trim, here on Debian)."""

from __future__ import annotations

import ctypes
import os

from sfu.heap import return_freed_memory


def resident_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_small_allocations_are_returned() -> None:
    # Many small blocks (below mmap's threshold) live in the heap: freeing them leaves
    # the resident size where it was until the heap is trimmed.
    # A block allocated after them and kept keeps the heap's top in use, so freeing cannot
    # shrink it by itself.
    blocks = [ctypes.create_string_buffer(b"x" * 4000) for _ in range(50_000)]
    top = ctypes.create_string_buffer(b"y" * 4000)
    grown = resident_kb()
    del blocks
    before_trim = resident_kb()
    assert return_freed_memory() is True
    after = resident_kb()
    assert grown - before_trim < 50_000  # freed, still resident
    assert before_trim - after > 100_000  # most of the ~200 MB came back
    assert top.value.startswith(b"y")

"""Giving freed C heap back to the system.

glibc keeps what C libraries free in its arenas: a recording's muxers (PyAV's Matroska
writer, one per track, on the recorder's own thread) free their buffers when the files
close, but the process's resident memory stays at the recording's high-water mark. In a
soak (`scripts/soak.py`: a class of 15 recorded 20 s of every 2 minutes) one
``malloc_trim`` took the server from 990 to 694 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return trim


def return_freed_memory() -> bool:
    """Ask the C allocator to give freed heap back to the system; False where it cannot
    (an allocator without ``malloc_trim``)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

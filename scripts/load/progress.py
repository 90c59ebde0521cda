"""A live one-line progress bar on stderr (plain text, no curses)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


class Progress:
    """Redraws one line in place on a terminal; elsewhere prints a line every 5 s."""

    def __init__(self, enabled: bool = True, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self._stream = stream
        self._tty = stream.isatty()
        self._last_line = 0.0
        self._drawn = False

    def show(self, phase: str, done: float, total: float, detail: str = "") -> None:
        if not self.enabled:
            return
        share = 0.0 if total <= 0 else min(1.0, done / total)
        filled = int(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        line = f"{phase:<8} [{bar}] {share * 100:5.1f}%  {detail}"
        if self._tty:
            self._stream.write("\r\x1b[2K" + line)
            self._stream.flush()
            self._drawn = True
        elif time.monotonic() - self._last_line >= 5.0:
            self._stream.write(line + "\n")
            self._stream.flush()
            self._last_line = time.monotonic()

    def message(self, text: str) -> None:
        """A line of its own (the bar is redrawn on the next `show`)."""
        if not self.enabled:
            return
        self.finish()
        self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False

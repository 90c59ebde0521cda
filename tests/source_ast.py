"""Parsing the project's own sources for the structure tests (imports, boundaries)."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parse_source(path: Path, source: str | None = None) -> ast.Module:
    """`ast.parse` of `path` (or of `source`, reported as `path`), with the garbage
    collector held off.

    CPython 3.11 counts recursion depth while it builds the tree; a collection that runs
    finalizers of objects earlier tests left behind (aiortc's, asyncio's) in the middle of
    it can throw the count off and fail the parse with ``SystemError: AST constructor
    recursion depth mismatch`` (seen in a full suite run, never alone).
    """
    text = path.read_text() if source is None else source
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(text, filename=str(path))
    finally:
        if enabled:
            gc.enable()

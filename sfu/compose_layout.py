"""Where each picture goes in a composed frame (`sfu.compose`): geometry only, no media.

`frame_layout` says which layout a frame has. Without a screen share, every participant
has a `CELL` in a grid as square as possible (`grid_layout`). A recording with a screen
share is composed on a larger canvas (`screen_canvas`): while a share is active the
screen fills the `MAIN` cell and the cameras are small cells in a column beside it, then
in rows below it (`screen_layout`); while none is, the cameras fill that canvas in a grid
of the largest 16:9 cells that fit (`grid_in`). Every position and size is even: the
frames are 4:2:0, one chroma sample per 2x2 pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

CELL = (320, 180)
MAIN = (960, 540)
SIDE_CELLS = MAIN[1] // CELL[1]
"""Cameras in the column beside the main cell; the others go in rows below it."""
ROW_CELLS = (MAIN[0] + CELL[0]) // CELL[0]
"""Cameras per row below the main cell (the canvas is the main cell plus the column)."""


@dataclass(frozen=True)
class Rect:
    """A region of the output frame, in pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Layout:
    """The output frame's size, each camera's cell (in participant order) and, while a
    screen share is shown, its main cell."""

    size: tuple[int, int]
    cameras: tuple[Rect, ...]
    main: Rect | None = None


@functools.cache
def frame_layout(count: int, *, screens: bool, sharing: bool) -> Layout:
    """The layout of one frame of a recording with `count` participants: `screens` says
    whether the recording has any screen share, `sharing` whether one is shown now."""
    if not screens:
        return grid_layout(count)
    if sharing:
        return screen_layout(count)
    return grid_in(count, screen_canvas(count))


def grid(count: int) -> tuple[int, int]:
    """Columns and rows for `count` cells (as square as possible)."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def grid_layout(count: int) -> Layout:
    """`count` cameras in `CELL`s, row by row: a recording without a screen share."""
    cols, rows = grid(count)
    width, height = CELL
    cells = tuple(Rect(c % cols * width, c // cols * height, width, height) for c in range(count))
    return Layout((cols * width, rows * height), cells)


def screen_canvas(count: int) -> tuple[int, int]:
    """The frame size of a recording with a screen share and `count` cameras."""
    rows = math.ceil(max(0, count - SIDE_CELLS) / ROW_CELLS)
    return MAIN[0] + CELL[0], MAIN[1] + rows * CELL[1]


def screen_layout(count: int) -> Layout:
    """The screen in the main cell (top left), the `count` cameras beside and below it."""
    width, height = CELL
    side = [Rect(MAIN[0], i * height, width, height) for i in range(min(count, SIDE_CELLS))]
    below = [
        Rect(i % ROW_CELLS * width, MAIN[1] + i // ROW_CELLS * height, width, height)
        for i in range(count - len(side))
    ]
    return Layout(screen_canvas(count), (*side, *below), main=Rect(0, 0, *MAIN))


def grid_in(count: int, size: tuple[int, int]) -> Layout:
    """`count` cameras in a grid of equal 16:9 cells as large as fit in `size`, centred."""
    cols, rows = grid(count)
    cell = fit(*CELL, Rect(0, 0, size[0] // cols, size[1] // rows))
    left = _even((size[0] - cols * cell.width) // 2)
    top = _even((size[1] - rows * cell.height) // 2)
    cells = tuple(
        Rect(left + c % cols * cell.width, top + c // cols * cell.height, cell.width, cell.height)
        for c in range(count)
    )
    return Layout(size, cells)


def fit(width: int, height: int, box: Rect) -> Rect:
    """The largest region of `width`:`height` proportions in `box`, centred in it (a
    picture shown whole, with black bars where the proportions differ)."""
    scale = min(box.width / width, box.height / height)
    fitted_w = max(2, _even(min(box.width, round(width * scale))))
    fitted_h = max(2, _even(min(box.height, round(height * scale))))
    return Rect(
        box.x + _even((box.width - fitted_w) // 2),
        box.y + _even((box.height - fitted_h) // 2),
        fitted_w,
        fitted_h,
    )


def _even(value: int) -> int:
    return value - value % 2

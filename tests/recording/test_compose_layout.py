"""The composed frame's geometry (`sfu.compose_layout`): pure functions, checked for every
classroom size up to 40 participants."""

from __future__ import annotations

import itertools
import math

import pytest

from sfu.compose_layout import (
    CELL,
    MAIN,
    Rect,
    fit,
    frame_layout,
    grid,
    grid_in,
    grid_layout,
    screen_canvas,
    screen_layout,
)

COUNTS = range(1, 41)


def _inside(rect: Rect, size: tuple[int, int]) -> bool:
    return (
        rect.x >= 0
        and rect.y >= 0
        and rect.x + rect.width <= size[0]
        and (rect.y + rect.height <= size[1])
    )


def _overlap(a: Rect, b: Rect) -> bool:
    return (
        a.x < b.x + b.width
        and b.x < a.x + a.width
        and a.y < b.y + b.height
        and b.y < a.y + a.height
    )


def _even(rect: Rect) -> bool:
    return all(value % 2 == 0 for value in (rect.x, rect.y, rect.width, rect.height))


def _well_formed(rects: list[Rect], size: tuple[int, int]) -> None:
    for rect in rects:
        assert _inside(rect, size) and _even(rect), (rect, size)
    for a, b in itertools.combinations(rects, 2):
        assert not _overlap(a, b), (a, b)


@pytest.mark.parametrize("count", COUNTS)
def test_without_a_share_every_camera_has_a_cell_of_the_square_grid(count: int) -> None:
    layout = grid_layout(count)
    cols, rows = grid(count)
    assert cols == math.ceil(math.sqrt(count)) and (rows - 1) * cols < count <= rows * cols
    assert layout.size == (cols * CELL[0], rows * CELL[1])
    assert layout.main is None
    # Row by row, as the composed grid has always been.
    assert layout.cameras == tuple(
        Rect(c % cols * CELL[0], c // cols * CELL[1], *CELL) for c in range(count)
    )
    assert frame_layout(count, screens=False, sharing=False) == layout


@pytest.mark.parametrize("count", COUNTS)
def test_a_share_is_the_main_cell_with_the_cameras_beside_then_below(count: int) -> None:
    layout = screen_layout(count)
    assert layout.main == Rect(0, 0, *MAIN)
    assert layout.size == screen_canvas(count)
    assert len(layout.cameras) == count
    assert all((c.width, c.height) == CELL for c in layout.cameras)
    _well_formed([layout.main, *layout.cameras], layout.size)
    beside = [c for c in layout.cameras if c.x >= MAIN[0] and c.y < MAIN[1]]
    below = [c for c in layout.cameras if c.y >= MAIN[1]]
    assert layout.cameras == (*beside, *below)
    assert [c.y for c in beside] == [i * CELL[1] for i in range(min(count, 3))]
    # The canvas is just tall enough for the rows below, four cameras to a row.
    assert layout.size == (MAIN[0] + CELL[0], MAIN[1] + math.ceil(len(below) / 4) * CELL[1])
    assert frame_layout(count, screens=True, sharing=True) == layout


@pytest.mark.parametrize("count", COUNTS)
def test_while_no_share_is_active_the_cameras_fill_the_same_canvas(count: int) -> None:
    size = screen_canvas(count)
    layout = grid_in(count, size)
    assert layout.size == size and layout.main is None and len(layout.cameras) == count
    _well_formed(list(layout.cameras), size)
    cell = layout.cameras[0]
    assert all((c.width, c.height) == (cell.width, cell.height) for c in layout.cameras)
    assert abs(cell.width / cell.height - 16 / 9) < 0.05
    cols, rows = grid(count)
    # As large as fit: one more pixel pair either way would not.
    assert cols * (cell.width + 2) > size[0] or rows * (cell.height + 2) > size[1]
    # Centred: the margins on each side differ by at most one pixel pair.
    left = cell.x
    right = size[0] - (left + cols * cell.width)
    top = cell.y
    bottom = size[1] - (top + rows * cell.height)
    assert abs(left - right) <= 2 and abs(top - bottom) <= 2
    assert frame_layout(count, screens=True, sharing=False) == layout


@pytest.mark.parametrize(
    ("picture", "shown"),
    [
        ((1920, 1080), Rect(0, 0, 960, 540)),  # 16:9 fills the main cell
        ((1280, 720), Rect(0, 0, 960, 540)),
        ((480, 360), Rect(120, 0, 720, 540)),  # 4:3: bars left and right
        ((1024, 768), Rect(120, 0, 720, 540)),
        ((2560, 1080), Rect(0, 68, 960, 404)),  # ultra-wide: bars above and below
        ((1080, 1920), Rect(328, 0, 304, 540)),  # portrait (a phone)
        ((1366, 768), Rect(0, 0, 960, 540)),  # near 16:9: rounding stays inside
    ],
)
def test_a_shared_screen_is_shown_whole_and_centred(picture: tuple[int, int], shown: Rect) -> None:
    main = Rect(0, 0, *MAIN)
    assert fit(*picture, main) == shown
    assert _inside(shown, MAIN) and _even(shown)


def test_fitting_into_odd_boxes_stays_even_and_inside() -> None:
    for width, height, box_w, box_h in itertools.product(
        (1, 3, 640, 1279), (1, 5, 360, 721), (2, 426, 427, 960), (2, 239, 540)
    ):
        box = Rect(4, 6, box_w, box_h)
        shown = fit(width, height, box)
        assert _even(shown), (width, height, box, shown)
        assert box.x <= shown.x and shown.x + shown.width <= box.x + box.width
        assert box.y <= shown.y and shown.y + shown.height <= box.y + box.height
        # Whole: the picture's proportions kept (within the even rounding).
        if shown.width > 2 and shown.height > 2:
            assert abs(shown.width / shown.height - width / height) <= (
                (width / height) * (2 / shown.width + 2 / shown.height) * 1.5
            )


def test_the_canvas_of_a_recording_with_shares_never_changes_with_them() -> None:
    for count in COUNTS:
        sizes = {frame_layout(count, screens=True, sharing=s).size for s in (False, True)}
        assert sizes == {screen_canvas(count)}

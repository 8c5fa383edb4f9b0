"""core.slides.object_picture on geometry checked by hand: a box of level-0 pixels drawn at a known
size, so that every level-0 point has a known screen pixel. Outlines get the class colour at
FILL_ALPHA inside and 255 on the edge, nothing outside; a hole gets no fill (the bare tissue shows);
both parts of a MultiPolygon are drawn; detections are outlines when large on screen and one dot
each when small."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from palmares_desktop.core.slides.detections import Detections, pack_tiles, unpack
from palmares_desktop.core.slides.object_picture import (
    DETECTION_RGB,
    FILL_ALPHA,
    MAX_DETECTION_OUTLINES,
    MIN_OUTLINE_PX,
    draw_calls,
    outline_bounds,
    render_objects,
)

# Level-0 box (1000, 2000)-(2000, 3000) drawn at 100 x 100: 10 level-0 px per screen pixel, so the
# level-0 point (x, y) falls in screen pixel (row, column) = ((y - 2000) / 10, (x - 1000) / 10).
BOX = (1000.0, 2000.0, 2000.0, 3000.0)
SIZE = (100, 100)
RED = (200, 0, 0)
BLUE = (0, 0, 200)


def pixel(picture: np.ndarray, x: float, y: float) -> np.ndarray:
    return picture[int((y - BOX[1]) / 10), int((x - BOX[0]) / 10)]


def test_a_square_is_filled_translucent_edged_solid_and_nothing_outside():
    square = shapely.box(1200, 2200, 1600, 2600)  # screen columns and rows 20 to 60
    picture = render_objects(BOX, SIZE, [(square, RED)])
    assert picture.shape == (100, 100, 4) and picture.dtype == np.uint8
    assert tuple(pixel(picture, 1400, 2400)) == (*RED, FILL_ALPHA)  # inside
    assert tuple(picture[40, 20]) == (*RED, 255)  # on the left edge
    assert tuple(picture[20, 40]) == (*RED, 255)  # on the top edge
    assert tuple(pixel(picture, 1800, 2800)) == (0, 0, 0, 0)  # outside
    assert tuple(pixel(picture, 1100, 2400)) == (0, 0, 0, 0)
    # The square covers screen rows and columns 20 to 60 (the 2-px edge a pixel beyond), nothing else.
    drawn = np.argwhere(picture[..., 3] > 0)
    assert (drawn.min(axis=0) >= 19).all() and (drawn.max(axis=0) <= 61).all()
    assert (picture[25:56, 25:56, 3] == FILL_ALPHA).all()


def test_a_square_with_a_square_hole_leaves_the_hole_unfilled():
    ring = shapely.box(1200, 2200, 1800, 2800).difference(shapely.box(1400, 2400, 1600, 2600))
    assert len(ring.interiors) == 1
    picture = render_objects(BOX, SIZE, [(ring, RED)])
    assert pixel(picture, 1500, 2500)[3] == 0  # the hole's centre: bare tissue
    assert (picture[45:56, 45:56, 3] == 0).all()  # the hole's whole inside
    assert tuple(pixel(picture, 1300, 2500)) == (*RED, FILL_ALPHA)  # the ring itself is filled
    assert tuple(pixel(picture, 1700, 2300)) == (*RED, FILL_ALPHA)
    assert tuple(picture[50, 40]) == (*RED, 255)  # the hole's outline (its left edge)
    assert tuple(picture[60, 50]) == (*RED, 255)  # and its bottom edge
    assert tuple(picture[50, 20]) == (*RED, 255)  # the exterior's edge as before
    assert tuple(pixel(picture, 1900, 2900)) == (0, 0, 0, 0)


def test_a_hole_shows_what_an_outline_under_it_draws():
    """A hole is no fill from its own polygon only: an outline below still shows through it."""
    under = shapely.box(1000, 2000, 2000, 3000)
    ring = shapely.box(1200, 2200, 1800, 2800).difference(shapely.box(1400, 2400, 1600, 2600))
    both = render_objects(BOX, SIZE, [(under, BLUE), (ring, RED)])
    alone = render_objects(BOX, SIZE, [(under, BLUE)])
    np.testing.assert_array_equal(both[45:56, 45:56], alone[45:56, 45:56])
    assert tuple(both[50, 50]) == (*BLUE, FILL_ALPHA)


def test_a_holed_polygon_partly_off_the_picture_is_clipped_and_keeps_its_hole():
    ring = shapely.box(500, 1500, 1600, 2600).difference(shapely.box(1200, 2200, 1400, 2400))
    picture = render_objects(BOX, SIZE, [(ring, RED)])
    assert tuple(picture[5, 5]) == (*RED, FILL_ALPHA)
    assert picture[30, 30, 3] == 0  # the hole
    assert tuple(picture[50, 50]) == (*RED, FILL_ALPHA)
    assert picture[80, 80, 3] == 0


def test_both_parts_of_a_multipolygon_are_drawn():
    parts = shapely.MultiPolygon([shapely.box(1100, 2100, 1300, 2300), shapely.box(1700, 2700, 1900, 2900)])
    picture = render_objects(BOX, SIZE, [(parts, RED)])
    assert tuple(pixel(picture, 1200, 2200)) == (*RED, FILL_ALPHA)
    assert tuple(pixel(picture, 1800, 2800)) == (*RED, FILL_ALPHA)
    assert pixel(picture, 1500, 2500)[3] == 0  # between the parts


def test_outlines_in_two_classes_keep_their_colours_and_points_are_skipped():
    picture = render_objects(
        BOX,
        SIZE,
        [
            (shapely.box(1100, 2100, 1300, 2300), RED),
            (shapely.box(1700, 2700, 1900, 2900), BLUE),
            (shapely.Point(1500, 2500), RED),  # not polygonal: drawn elsewhere (Points layer)
        ],
    )
    assert tuple(pixel(picture, 1200, 2200)) == (*RED, FILL_ALPHA)
    assert tuple(pixel(picture, 1800, 2800)) == (*BLUE, FILL_ALPHA)
    assert pixel(picture, 1500, 2500)[3] == 0


def _nuclei(centres: np.ndarray, radius: float) -> Detections:
    """Round detections of `radius` level-0 px (12-vertex rings), as benchmarks/bench_slides.py makes."""
    n = len(centres)
    angle = np.linspace(0, 2 * np.pi, 13)[:-1]
    ring = np.c_[np.cos(angle), np.sin(angle)] * radius
    vertices = (centres[:, None, :] + ring[None]).reshape(-1, 2)
    names = ["area_um2", "circularity"]
    return Detections(
        np.asarray(centres, float), np.arange(n + 1, dtype=np.int64) * 12, vertices, np.zeros((n, 2)), names
    )


def _through_the_store_format(found: Detections) -> Detections:
    """The detections as the slide room reads them: packed per tile, unpacked, concatenated."""
    return Detections.concatenate([unpack(t["data"], found.measurement_names) for t in pack_tiles(found)])


def test_large_detections_are_outlines_not_filled():
    centres = np.array([[1250.0, 2250.0], [1550.0, 2550.0], [1750.0, 2350.0]])
    found = _through_the_store_format(_nuclei(centres, 100.0))  # 20 screen px across
    assert MIN_OUTLINE_PX <= 20
    picture = render_objects(BOX, SIZE, detections=found)
    for x, y in centres:
        assert pixel(picture, x, y)[3] == 0  # the centre of an outline is not filled
        for dx, dy in ((100, 0), (-100, 0), (0, 100), (0, -100)):  # ring vertices: on the outline
            r, c = round((y + dy - BOX[1]) / 10), round((x + dx - BOX[0]) / 10)
            window = picture[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]
            assert (window[..., 3] == 255).any()
            assert tuple(window[window[..., 3] == 255][0]) == (*DETECTION_RGB, 255)
    assert draw_calls(BOX, SIZE, (), found) == 3  # one line each


def test_small_detections_are_one_dot_each_at_their_centroid():
    rng = np.random.default_rng(3)
    # Centres on distinct screen pixels (multiples of 10 level-0 px, + 5: the pixels' centres), some
    # outside the box (not drawn).
    cells = rng.choice(150 * 150, 400, replace=False)
    centres = np.c_[cells % 150 * 10 + 505.0, cells // 150 * 10 + 1505.0]
    found = _through_the_store_format(_nuclei(centres, 4.0))  # 0.8 screen px across: dots
    picture = render_objects(BOX, SIZE, detections=found)
    inside = (
        (centres[:, 0] >= BOX[0])
        & (centres[:, 0] < BOX[2])
        & (centres[:, 1] >= BOX[1])
        & (centres[:, 1] < BOX[3])
    )
    assert 0 < inside.sum() < len(centres)
    dots = np.argwhere(picture[..., 3] > 0)
    assert len(dots) == inside.sum()  # one dot per detection in the box, none for the others
    assert (picture[picture[..., 3] > 0] == (*DETECTION_RGB, 255)).all()
    expected = {(int((y - BOX[1]) // 10), int((x - BOX[0]) // 10)) for x, y in centres[inside]}
    assert {tuple(d) for d in dots.tolist()} == expected  # each at its centroid's pixel
    assert draw_calls(BOX, SIZE, (), found) == 0  # dots are set at once, not drawn one by one


def test_too_many_detections_are_dots_even_when_large():
    n = MAX_DETECTION_OUTLINES + 1
    centres = np.c_[np.linspace(1001, 1999, n), np.full(n, 2500.0)]
    found = _nuclei(centres, 100.0)
    assert draw_calls(BOX, SIZE, (), found) == 0
    picture = render_objects(BOX, SIZE, detections=found)
    assert (picture[50, :, 3] == 255).all() and picture[..., 3].sum() == 100 * 255  # one row of dots


def test_draw_calls_counts_outlines_and_outlined_detections():
    outlines = [(shapely.box(1100 + 10 * i, 2100, 1105 + 10 * i, 2105), RED) for i in range(7)]
    assert draw_calls(BOX, SIZE, outlines) == 7
    assert draw_calls(BOX, SIZE) == 0
    big = _nuclei(np.array([[1500.0, 2500.0], [1600.0, 2600.0], [5000.0, 5000.0]]), 100.0)
    assert draw_calls(BOX, SIZE, outlines, big) == 7 + 2  # the one outside the box is not drawn
    small = _nuclei(np.array([[1500.0, 2500.0], [1600.0, 2600.0]]), 4.0)
    assert draw_calls(BOX, SIZE, outlines, small) == 7
    assert draw_calls(BOX, SIZE, outlines, Detections.empty()) == 7


def test_outline_bounds_are_shapelys():
    geometries = [
        shapely.box(1, 2, 3, 4),
        shapely.box(0, 0, 10, 10).difference(shapely.box(2, 2, 4, 4)),
        shapely.MultiPolygon([shapely.box(5, 5, 6, 6), shapely.box(-3, 7, -1, 20)]),
        shapely.Polygon([(0, 0), (7.5, 1.25), (3, 9)]),
    ]
    bounds = outline_bounds(geometries)
    assert bounds.shape == (4, 4)
    for row, g in zip(bounds, geometries, strict=True):
        assert tuple(row) == pytest.approx(g.bounds)
    assert outline_bounds([]).shape == (0, 4)

"""Slide objects drawn as one picture of a view (RGBA), for slides with more of them than a viewer
can hold as editable shapes.

A napari Shapes layer builds Python objects and meshes per shape (seconds for 10,000 outlines and
hundreds of ms per redraw on software OpenGL); detections come by the hundred thousand. The slide
room therefore draws what it does not edit (annotations beyond the editable few in view, and every
detection) here: a box of level-0 pixels rendered at screen resolution with Pillow, in a worker
thread. Outlines get a translucent fill and a solid edge in their class colour, holes outlined and
left unfilled (bare tissue shows through, as on the Shapes path); a detection is its outline when it
is at least `MIN_OUTLINE_PX` screen pixels across, a dot otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from PIL import Image, ImageDraw

FILL_ALPHA = 56  # 0.22 of 255: the Shapes layer's face opacity
DETECTION_RGB = (40, 220, 120)  # green: stands out on haematoxylin purple and eosin pink
MIN_OUTLINE_PX = 4.0  # a detection narrower than this on screen is drawn as a dot
MAX_DETECTION_OUTLINES = 30_000  # beyond this many in the box, dots (outlines would not be legible)


def render_objects(
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    outlines: Sequence[tuple[Any, tuple[int, int, int]]] = (),
    detections: Any = None,
    detection_rgb: tuple[int, int, int] = DETECTION_RGB,
) -> np.ndarray:
    """(height, width, 4) uint8 picture of level-0 `box` (x0, y0, x1, y1) at `size` (width, height):
    `outlines` as (shapely polygonal geometry, rgb) and `detections` (core.slides.detections.Detections)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = int(size[0]), int(size[1])
    sx, sy = width / max(x1 - x0, 1e-9), height / max(y1 - y0, 1e-9)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image, "RGBA")
    edge = 2 if min(sx, sy) * 50 > 2 else 1

    def screen(xy: np.ndarray) -> list[float]:
        return np.c_[(xy[:, 0] - x0) * sx, (xy[:, 1] - y0) * sy].ravel().tolist()

    for geometry, rgb in outlines:
        rgb = tuple(int(c) for c in rgb)
        for part in getattr(geometry, "geoms", [geometry]):
            if part.geom_type != "Polygon" or part.is_empty:
                continue
            exterior = screen(np.asarray(part.exterior.coords))
            if part.interiors:
                _fill_with_holes(image, part, screen, rgb, (width, height))
            else:
                draw.polygon(exterior, fill=(*rgb, FILL_ALPHA))
            draw.line(exterior, fill=(*rgb, 255), width=edge)
            for ring in part.interiors:
                draw.line(screen(np.asarray(ring.coords)), fill=(*rgb, 255), width=edge)
    dots = None
    if detections is not None and len(detections):
        dots = _draw_detections(draw, detections, (x0, y0, sx, sy), (width, height), detection_rgb)
    out = np.array(image)  # the one copy out of Pillow
    if dots is not None:
        out[dots[0], dots[1]] = (*detection_rgb, 255)
    return out


def _fill_with_holes(image, part, screen, rgb, size) -> None:
    """Fill polygon `part` but not its holes: an 'L' mask of its screen box (exterior 255, interiors
    0) through which a tile of the translucent colour is composited, so a hole shows bare tissue."""
    xs, ys = np.asarray(screen(np.asarray(part.exterior.coords))).reshape(-1, 2).T
    left, top = max(int(np.floor(xs.min())), 0), max(int(np.floor(ys.min())), 0)
    right, bottom = min(int(np.ceil(xs.max())) + 1, size[0]), min(int(np.ceil(ys.max())) + 1, size[1])
    if right <= left or bottom <= top:
        return
    mask = Image.new("L", (right - left, bottom - top), 0)
    pen = ImageDraw.Draw(mask)

    def local(ring) -> list[float]:
        xy = np.asarray(screen(np.asarray(ring.coords))).reshape(-1, 2) - (left, top)
        return xy.ravel().tolist()

    pen.polygon(local(part.exterior), fill=255)
    for ring in part.interiors:
        pen.polygon(local(ring), fill=0)
    tile = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    tile.paste(Image.new("RGBA", mask.size, (*rgb, FILL_ALPHA)), (0, 0), mask)
    image.alpha_composite(tile, (left, top))


def _detections_in(found, box, size) -> tuple[np.ndarray, bool]:
    """(indices of the detections whose centroid is in `box`, whether to draw them as outlines)."""
    x0, y0, x1, y1 = box
    c = found.centroids
    inside = np.flatnonzero((c[:, 0] >= x0) & (c[:, 0] < x1) & (c[:, 1] >= y0) & (c[:, 1] < y1))
    if not len(inside):
        return inside, False
    sizes = np.diff(found.offsets)
    sample = inside[: min(len(inside), 50)]
    across = np.median(
        [
            np.ptp(found.vertices[found.offsets[i] : found.offsets[i] + max(sizes[i], 1)], axis=0).max()
            for i in sample
        ]
    )
    scale = min(size[0] / max(x1 - x0, 1e-9), size[1] / max(y1 - y0, 1e-9))
    return inside, bool(across * scale >= MIN_OUTLINE_PX and len(inside) <= MAX_DETECTION_OUTLINES)


def draw_calls(box, size, outlines: Sequence = (), detections: Any = None) -> int:
    """About how many shapes `render_objects` would draw one by one (dots are drawn at once): a
    measure of its cost, so a caller can draw small pictures at once and big ones in a worker."""
    n = len(outlines)
    if detections is not None and len(detections):
        inside, as_outlines = _detections_in(detections, box, size)
        n += len(inside) if as_outlines else 0
    return n


def _draw_detections(draw, found, frame, size, rgb) -> tuple[np.ndarray, np.ndarray] | None:
    """Draw the detections' outlines; or, when they are too small or too many, return the (rows,
    columns) of their dots for the caller to set in the array."""
    x0, y0, sx, sy = frame
    width, height = size
    inside, as_outlines = _detections_in(found, (x0, y0, x0 + width / sx, y0 + height / sy), (width, height))
    if not len(inside):
        return None
    c = found.centroids
    if as_outlines:
        for i in inside:
            xy = found.vertices[found.offsets[i] : found.offsets[i + 1]]
            if len(xy) >= 3:
                ring = np.vstack([xy, xy[:1]])
                draw.line(
                    np.c_[(ring[:, 0] - x0) * sx, (ring[:, 1] - y0) * sy].ravel().tolist(),
                    fill=(*rgb, 255),
                    width=1,
                )
        return None
    col = np.clip(((c[inside, 0] - x0) * sx).astype(np.int64), 0, width - 1)
    row = np.clip(((c[inside, 1] - y0) * sy).astype(np.int64), 0, height - 1)
    return row, col


def outline_bounds(geometries: Sequence[Any]) -> np.ndarray:
    """(n, 4) x0, y0, x1, y1 of each geometry (vectorised)."""
    return shapely.bounds(np.asarray(geometries, dtype=object)).reshape(-1, 4)

"""Agreement of two readers' slide annotations of one region class (DOMAIN.md §8): Dice of the
rasterised regions and the difference of their areas.

Each reader's region is the union of their polygons of that class. Both are rasterised on one grid
over the union's bounding box (pixel centres tested against the geometry), sized so its longer side
has at most `max_side` pixels; the areas are the exact polygon areas, in mm² when the slide's µm per
pixel is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from palmares_desktop.core.agreement.overlap import dice


@dataclass(frozen=True)
class RegionAgreement:
    dice: float | None
    jaccard: float | None
    area_a_mm2: float | None  # None without the slide's MPP (areas are then in pixels, below)
    area_b_mm2: float | None
    area_difference_mm2: float | None
    area_a_px: float
    area_b_px: float
    raster_pixel_px: float  # the raster's pixel edge, in level-0 pixels


def rasterise(geometry, bounds: tuple[float, float, float, float], step: float) -> np.ndarray:
    """Boolean image of `geometry` on the grid of pixel centres over `bounds` with edge `step`."""
    x0, y0, x1, y1 = bounds
    xs = x0 + step * (np.arange(max(int(np.ceil((x1 - x0) / step)), 1)) + 0.5)
    ys = y0 + step * (np.arange(max(int(np.ceil((y1 - y0) / step)), 1)) + 0.5)
    gx, gy = np.meshgrid(xs, ys)
    if geometry.is_empty:
        return np.zeros(gx.shape, bool)
    shapely.prepare(geometry)
    return shapely.contains_xy(geometry, gx, gy)


def region_agreement(
    a: Sequence, b: Sequence, mpp: float | None = None, max_side: int = 1024
) -> RegionAgreement:
    """Two readers' polygons of one class (shapely geometries, level-0 pixels)."""
    union_a = shapely.union_all(list(a)) if len(a) else shapely.Polygon()
    union_b = shapely.union_all(list(b)) if len(b) else shapely.Polygon()
    both = shapely.union_all([union_a, union_b])
    area_a, area_b = float(union_a.area), float(union_b.area)
    to_mm2 = (mpp / 1000.0) ** 2 if mpp else None
    if both.is_empty:
        d, step = 1.0, 1.0  # both empty: perfect agreement, as for masks
    else:
        bounds = both.bounds
        step = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) / max_side or 1.0
        d = dice(rasterise(union_a, bounds, step), rasterise(union_b, bounds, step))
    return RegionAgreement(
        dice=d,
        jaccard=None if d is None else d / (2.0 - d),
        area_a_mm2=area_a * to_mm2 if to_mm2 else None,
        area_b_mm2=area_b * to_mm2 if to_mm2 else None,
        area_difference_mm2=(area_b - area_a) * to_mm2 if to_mm2 else None,
        area_a_px=area_a,
        area_b_px=area_b,
        raster_pixel_px=step,
    )

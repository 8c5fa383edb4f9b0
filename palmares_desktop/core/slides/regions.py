"""Pixels of a slide region at a stated resolution, and an annotation's outline rasterised on them.

A region is read from the pyramid level closest to (not coarser than) the asked resolution, then
reduced by an integer block mean when the level is still finer; the result says exactly what was
read (level, reduction, effective µm per pixel), for provenance. Level 0 is read only for the
region asked, never whole, and a region larger than `max_pixels` is refused in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from skimage.draw import polygon as fill_polygon

from palmares_desktop.core.slides.reader import SlideError, SlideInfo, read_region

MAX_PIXELS = 64_000_000  # about 190 MB of RGB: the largest region read at once
STRIP_PIXELS = 16_000_000  # level pixels read at once when a level is reduced further


@dataclass(frozen=True)
class Region:
    rgb: np.ndarray  # (rows, columns, 3) uint8
    x0: int  # level-0 pixel of the region's top-left corner
    y0: int
    level: int  # pyramid level read
    reduction: int  # integer block mean applied after reading (1 = none)
    downsample: float  # level-0 pixels per region pixel (level downsample x reduction)
    mpp: float | None  # µm per region pixel (None: the slide's pixel size is unknown)

    def provenance(self) -> dict:
        return {
            "level": self.level,
            "reduction": self.reduction,
            "downsample": self.downsample,
            "mpp_um": self.mpp,
            "origin_level0": [self.x0, self.y0],
            "shape": list(self.rgb.shape[:2]),
        }


def _block_mean(rgb: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return rgb
    rows, cols = (rgb.shape[0] // factor) * factor, (rgb.shape[1] // factor) * factor
    blocks = rgb[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor, 3)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def choose_level(info: SlideInfo, downsample: float) -> int:
    """The coarsest level whose downsample does not exceed `downsample` (level 0 at least)."""
    best = 0
    for n, ds in enumerate(info.downsamples):
        if ds <= downsample * 1.001:
            best = n
    return best


def read_at(
    path: str | Path,
    info: SlideInfo,
    bounds: tuple[float, float, float, float],
    target_mpp: float | None = None,
    downsample: float | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Region:
    """The level-0 box `bounds` (x0, y0, x1, y1) at `target_mpp` µm/px (needs MPP) or `downsample`."""
    if target_mpp is not None:
        if not info.mpp_x:
            raise SlideError(
                f"{info.path.name} has no known pixel size (MPP): it cannot be read at {target_mpp} µm per pixel."
            )
        downsample = max(target_mpp / info.mpp_x, 1.0)
    downsample = max(float(downsample or 1.0), 1.0)
    x0, y0 = max(int(np.floor(bounds[0])), 0), max(int(np.floor(bounds[1])), 0)
    x1, y1 = min(int(np.ceil(bounds[2])), info.width), min(int(np.ceil(bounds[3])), info.height)
    if x1 <= x0 or y1 <= y0:
        raise SlideError("The region lies outside the slide.")
    level = choose_level(info, downsample)
    level_ds = info.downsamples[level]
    reduction = max(int(round(downsample / level_ds)), 1)
    out_pixels = ((x1 - x0) / (level_ds * reduction)) * ((y1 - y0) / (level_ds * reduction))
    if out_pixels > max_pixels:
        raise SlideError(
            f"The region is {out_pixels / 1e6:.0f} million pixels at that resolution (at most "
            f"{max_pixels / 1e6:.0f} million are read at once): draw a smaller region or use a coarser resolution."
        )
    lx0, ly0 = int(x0 / level_ds), int(y0 / level_ds)
    lx1 = min(int(np.ceil(x1 / level_ds)), info.levels[level][1])
    ly1 = min(int(np.ceil(y1 / level_ds)), info.levels[level][0])
    if reduction == 1:
        rgb = read_region(path, level, lx0, ly0, lx1 - lx0, ly1 - ly0)
    else:  # strip by strip: a level finer than asked is never held whole, only its reduction
        step = reduction * max(STRIP_PIXELS // max((lx1 - lx0), 1) // reduction, 1)
        strips = [
            _block_mean(read_region(path, level, lx0, y, lx1 - lx0, min(step, ly1 - y)), reduction)
            for y in range(ly0, ly1, step)
        ]
        rgb = np.concatenate([s for s in strips if s.size], axis=0)
    effective = level_ds * reduction
    mpp = info.mpp_x * effective if info.mpp_x else None
    return Region(rgb, int(lx0 * level_ds), int(ly0 * level_ds), level, reduction, effective, mpp)


def rasterise(geometry, region: Region) -> np.ndarray:
    """Boolean mask on the region's pixel grid: pixels whose centre lies inside `geometry` (holes out)."""
    shape = region.rgb.shape[:2]
    mask = np.zeros(shape, bool)
    polygons = getattr(geometry, "geoms", [geometry])
    for poly in polygons:
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        for n, ring in enumerate([poly.exterior, *poly.interiors]):
            xy = np.asarray(ring.coords)
            cols = (xy[:, 0] - region.x0) / region.downsample - 0.5
            rows = (xy[:, 1] - region.y0) / region.downsample - 0.5
            rr, cc = fill_polygon(rows, cols, shape)
            mask[rr, cc] = n == 0  # the exterior fills, each hole clears
    return mask


def region_of(path, info: SlideInfo, geometry, **kwargs) -> tuple[Region, np.ndarray]:
    """(region, mask) of an annotation's outline."""
    if not isinstance(geometry, shapely.Geometry) or geometry.is_empty:
        raise SlideError("The annotation has no outline to measure.")
    region = read_at(path, info, geometry.bounds, **kwargs)
    return region, rasterise(geometry, region)

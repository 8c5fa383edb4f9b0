"""The slide room's wand: one click grows a region of similar colour, as QuPath's wand tool does.

The slide is read around the click at the resolution the pathologist is looking at (level-0 pixels
per screen pixel, through `regions.read_at`), at most `window_px` screen pixels a side and never
beyond the part of the slide on screen, so what grows is what can be seen. The pixels are smoothed
(Gaussian, `smoothing_px` screen pixels, so single nuclei and JPEG noise do not stop the fill) and
compared in CIE L*a*b* (perceptual: a distance of about 2.3 is just noticeable) with the smoothed
colour under the click; the connected (4-neighbour) pixels within `tolerance` ΔE (CIE76) of it form
the region. It is closed and opened by one pixel (no single-pixel spurs or bridges), its holes
smaller than `fill_holes_px` are filled (larger ones, a lumen or a vessel, are kept), traced
(`skimage.measure.find_contours`) into a polygon in level-0 pixels, and simplified by one screen
pixel. Nothing here is stored: the slide room adds the result through the annotation session (so it
is undoable), with `WandResult.to_dict()` as its provenance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely
from scipy import ndimage as ndi
from skimage import color

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.slides.reader import SlideInfo
from palmares_desktop.core.slides.regions import Region, read_at
from palmares_desktop.core.slides.tissue import mask_to_polygons

MIN_PIXELS = 9  # a region smaller than 3 x 3 screen pixels is not a region
_CROSS = ndi.generate_binary_structure(2, 1)


class WandError(PalmaresError):
    """A wand click that gives no region (message is a plain sentence)."""


@dataclass(frozen=True)
class WandParams:
    tolerance: float = 12.0  # ΔE (CIE76, L*a*b*) from the colour under the click
    smoothing_px: float = 1.5  # Gaussian sigma, screen pixels
    fill_holes_px: int = 400  # holes smaller than this (screen pixels, about 20 x 20) are filled
    window_px: int = 2048  # the largest side of the area read around the click, screen pixels
    simplify_px: float = 1.0  # outline simplification tolerance, screen pixels

    def __post_init__(self) -> None:
        if not self.tolerance > 0:
            raise WandError(f"The wand tolerance must be more than 0 ΔE, not {self.tolerance:g}.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WandResult:
    geometry: shapely.Polygon | shapely.MultiPolygon  # level-0 pixels
    seed_lab: tuple[float, float, float]  # smoothed L*a*b* colour under the click
    pixels: int  # pixels of the region at the resolution read
    touches_edge: bool  # the region reached the edge of the area read (not the slide's edge)
    area_mm2: float | None  # None without MPP
    read: dict  # what was read (regions.Region.provenance)
    params: dict

    def to_dict(self) -> dict:
        """Provenance for the stored annotation (everything but the outline)."""
        return {
            "method": "wand-lab-flood",
            "seed_lab": [round(float(v), 3) for v in self.seed_lab],
            "pixels": self.pixels,
            "touches_edge": self.touches_edge,
            "area_mm2": self.area_mm2,
            "read": self.read,
            "params": self.params,
        }


def _lab(rgb: np.ndarray, smoothing: float) -> np.ndarray:
    values = rgb[..., :3].astype(np.float32) / 255.0
    if smoothing > 0:
        values = ndi.gaussian_filter(values, sigma=(smoothing, smoothing, 0), mode="nearest")
    return color.rgb2lab(np.clip(values, 0.0, 1.0)).astype(np.float32)


def _component(mask: np.ndarray, row: int, col: int) -> np.ndarray:
    labels, _ = ndi.label(mask, structure=_CROSS)
    label = labels[row, col]
    return labels == label if label else np.zeros_like(mask)


def _fill_small_holes(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    """`mask` with its enclosed holes (not touching the border) smaller than `max_pixels` filled."""
    holes, count = ndi.label(~mask, structure=_CROSS)
    if not count:
        return mask
    sizes = np.bincount(holes.ravel())
    border = np.unique(np.r_[holes[0], holes[-1], holes[:, 0], holes[:, -1]])
    fill = sizes < max_pixels
    fill[0] = False
    fill[border] = False
    return mask | fill[holes]


def grow(rgb: np.ndarray, row: int, col: int, params: WandParams = WandParams()) -> tuple[np.ndarray, tuple]:
    """(mask, seed L*a*b*): the region of similar colour grown from pixel (row, col) of `rgb`, cleaned
    (see the module docstring); sizes in `params` are in pixels of `rgb`."""
    if not (0 <= row < rgb.shape[0] and 0 <= col < rgb.shape[1]):
        raise WandError("The wand was clicked outside the area read from the slide.")
    lab = _lab(rgb, params.smoothing_px)
    seed = lab[row, col].copy()
    distance = np.sqrt(((lab - seed) ** 2).sum(axis=-1))
    region = _component(distance <= params.tolerance, row, col)
    grown = ndi.binary_closing(np.pad(region, 1), structure=_CROSS)[1:-1, 1:-1] | region
    grown = _fill_small_holes(grown, params.fill_holes_px)
    opened = ndi.binary_opening(grown, structure=_CROSS)
    if opened[row, col]:  # a region only a pixel or two wide keeps its unopened outline
        grown = _component(opened, row, col)
    if grown.sum() < MIN_PIXELS:
        raise WandError(
            f"The wand found no region of similar colour at that point (tolerance {params.tolerance:g} ΔE): "
            "raise the tolerance or zoom in."
        )
    return grown, tuple(float(v) for v in seed)


def _touches_edge(mask: np.ndarray, region: Region, info: SlideInfo) -> bool:
    """Whether the region reaches a side of the area read that is not the slide's own edge."""
    rows, cols = mask.shape
    x1, y1 = region.x0 + cols * region.downsample, region.y0 + rows * region.downsample
    sides = (
        (mask[:, 0].any(), region.x0 > 0),
        (mask[0].any(), region.y0 > 0),
        (mask[:, -1].any(), x1 < info.width - region.downsample),
        (mask[-1].any(), y1 < info.height - region.downsample),
    )
    return any(touches and inner for touches, inner in sides)


def wand_on_region(
    region: Region, info: SlideInfo, x: float, y: float, screen_px: float, params: WandParams = WandParams()
) -> WandResult:
    """The wand on pixels already read: level-0 click (x, y); `screen_px` level-0 pixels per screen pixel."""
    scale = max(screen_px / region.downsample, 1e-9)  # region pixels per screen pixel
    local = WandParams(
        tolerance=params.tolerance,
        smoothing_px=params.smoothing_px * scale,
        fill_holes_px=max(int(round(params.fill_holes_px * scale**2)), 1),
        window_px=params.window_px,
        simplify_px=params.simplify_px * scale,
    )
    rows, cols = region.rgb.shape[:2]
    row = min(max(int(np.floor((y - region.y0) / region.downsample)), 0), rows - 1)
    col = min(max(int(np.floor((x - region.x0) / region.downsample)), 0), cols - 1)
    mask, seed = grow(region.rgb, row, col, local)
    traced = mask_to_polygons(mask, region, simplify_px=local.simplify_px)
    geometry = shapely.make_valid(traced).intersection(shapely.box(0, 0, info.width, info.height))
    polygons = [g for g in getattr(geometry, "geoms", [geometry]) if g.geom_type == "Polygon" and g.area > 0]
    if not polygons:
        raise WandError("The wand region has no area on the slide: click inside the slide.")
    # The click's own part first (tracing a region joined only at a corner can give two parts).
    click = shapely.Point(x, y)
    polygons.sort(key=lambda p: (not p.covers(click), -p.area))
    outline = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
    mpp_x, mpp_y = info.mpp_x, info.mpp_y
    area_mm2 = outline.area * mpp_x * mpp_y / 1e6 if mpp_x and mpp_y else None
    return WandResult(
        outline,
        seed,
        int(mask.sum()),
        _touches_edge(mask, region, info),
        area_mm2,
        region.provenance(),
        params.to_dict(),
    )


def wand(
    path: str | Path,
    info: SlideInfo,
    x: float,
    y: float,
    screen_px: float,
    visible: tuple[float, float, float, float] | None = None,
    params: WandParams = WandParams(),
) -> WandResult:
    """Grow a region from the level-0 click (x, y) seen at `screen_px` level-0 pixels per screen pixel;
    only the `visible` level-0 box (x0, y0, x1, y1; default: the window around the click) is read."""
    if not (0 <= x < info.width and 0 <= y < info.height):
        raise WandError("The wand was clicked outside the slide: click on the tissue.")
    screen_px = max(float(screen_px), 1.0)  # finer than level 0 there is nothing more to read
    half = params.window_px / 2 * screen_px
    box = [max(x - half, 0.0), max(y - half, 0.0), min(x + half, info.width), min(y + half, info.height)]
    if visible is not None and visible[0] <= x <= visible[2] and visible[1] <= y <= visible[3]:
        box = [
            max(box[0], visible[0]),
            max(box[1], visible[1]),
            min(box[2], visible[2]),
            min(box[3], visible[3]),
        ]
    region = read_at(path, info, tuple(box), downsample=screen_px)
    return wand_on_region(region, info, x, y, screen_px, params)

"""One-click tissue outline at low resolution: threshold on saturation and optical density, debris
and small holes removed, returned as level-0 polygons the pathologist can edit.

Glass is bright and grey; stained tissue is coloured (saturated) or dark (high OD). A pixel is
tissue when its saturation exceeds `saturation` or its mean OD exceeds `od` (both also above
Otsu's threshold of saturation when that is lower, so faint eosin counts). The mask is closed,
objects smaller than `min_object_um2` (debris, dust) removed and holes smaller than
`min_hole_um2` filled, then traced (skimage contours) into polygons with holes, simplified by one
low-resolution pixel and scaled to level-0 pixels. Everything is read at `TISSUE_MPP` µm per pixel
(or, without MPP, at a downsample giving about 2 million pixels), never at level 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely
from scipy import ndimage as ndi
from skimage import filters, measure, morphology

from palmares_desktop.core.slides.reader import SlideInfo
from palmares_desktop.core.slides.regions import Region, read_at

TISSUE_MPP = 8.0  # µm per pixel (about 1.25x)
FALLBACK_PIXELS = 2_000_000


@dataclass(frozen=True)
class TissueParams:
    saturation: float = 0.08  # (max - min) / max of RGB
    od: float = 0.25  # mean natural-log optical density over RGB
    min_object_um2: float = 20_000.0  # 0.02 mm²: smaller islands are debris
    min_hole_um2: float = 10_000.0  # smaller holes are filled
    closing_um: float = 16.0
    target_mpp: float = TISSUE_MPP

    def to_dict(self) -> dict:
        return asdict(self)


def tissue_mask(
    rgb: np.ndarray, params: TissueParams = TissueParams(), pixel_um: float | None = None
) -> np.ndarray:
    """Boolean tissue mask of an RGB array; `pixel_um` (µm per pixel) scales the size rules."""
    values = rgb[..., :3].astype(np.float64)
    high, low = values.max(axis=-1), values.min(axis=-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1), 0.0)
    od = -np.log(np.maximum(values, 1) / 255.0).mean(axis=-1)
    threshold = params.saturation
    if saturation.std() > 0.01:
        threshold = min(threshold, max(filters.threshold_otsu(saturation), 0.04))
    mask = (saturation > threshold) | (od > params.od)
    mask &= high < 250  # pure white is glass, whatever its hue
    px = pixel_um or TISSUE_MPP
    radius = max(int(round(params.closing_um / px / 2)), 1)
    mask = ndi.binary_closing(np.pad(mask, radius), morphology.disk(radius))[radius:-radius, radius:-radius]
    mask = _drop_small(mask, params.min_object_um2 / px**2)
    return ~_drop_small(~mask, params.min_hole_um2 / px**2)


def _drop_small(mask: np.ndarray, min_pixels: float) -> np.ndarray:
    """`mask` without its 8-connected components smaller than `min_pixels`."""
    labels, _ = ndi.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]


def mask_to_polygons(mask: np.ndarray, region: Region, simplify_px: float = 1.0) -> shapely.MultiPolygon:
    """Level-0 polygons (holes kept) of a boolean mask on the grid of `region`."""
    labels, count = ndi.label(mask)
    polygons = []
    for n, box in enumerate(ndi.find_objects(labels), start=1):
        component = np.pad(labels[box] == n, 1)
        rings = [
            shapely.Polygon(np.c_[c[:, 1] + box[1].start - 1, c[:, 0] + box[0].start - 1])
            for c in measure.find_contours(component.astype(float), 0.5)
            if len(c) >= 4
        ]
        rings = [r.buffer(0) for r in rings if r.area > 0]
        if not rings:
            continue
        rings.sort(key=lambda r: r.area, reverse=True)
        shape = rings[0]
        for hole in rings[1:]:
            shape = shape.difference(hole)
        polygons.append(shape.simplify(simplify_px))
    if not polygons:
        return shapely.MultiPolygon()
    merged = shapely.unary_union(polygons)
    # Grid (pixel centres at +0.5) to level-0 pixels.
    scaled = shapely.affinity.affine_transform(
        merged,
        [
            region.downsample,
            0,
            0,
            region.downsample,
            region.x0 + 0.5 * region.downsample,
            region.y0 + 0.5 * region.downsample,
        ],
    )
    parts = [g for g in getattr(scaled, "geoms", [scaled]) if g.geom_type == "Polygon" and not g.is_empty]
    return shapely.MultiPolygon(parts)


@dataclass
class TissueResult:
    geometry: shapely.MultiPolygon  # level-0 pixels
    area_px: float
    area_mm2: float | None
    region: dict
    params: dict

    def to_dict(self) -> dict:
        return {
            "polygons": len(self.geometry.geoms),
            "area_px": self.area_px,
            "area_mm2": self.area_mm2,
            "read": self.region,
            "params": self.params,
        }


def detect_tissue(path: str | Path, info: SlideInfo, params: TissueParams = TissueParams()) -> TissueResult:
    """The slide's tissue outline, from a low level (see the module docstring)."""
    whole = (0, 0, info.width, info.height)
    if info.mpp_x:
        region = read_at(path, info, whole, target_mpp=max(params.target_mpp, info.mpp_x))
    else:
        region = read_at(
            path, info, whole, downsample=max(np.sqrt(info.width * info.height / FALLBACK_PIXELS), 1)
        )
    mask = tissue_mask(region.rgb, params, region.mpp)
    geometry = mask_to_polygons(mask, region)
    area_mm2 = geometry.area * info.mpp_x * info.mpp_y / 1e6 if info.mpp_x and info.mpp_y else None
    return TissueResult(geometry, float(geometry.area), area_mm2, region.provenance(), params.to_dict())

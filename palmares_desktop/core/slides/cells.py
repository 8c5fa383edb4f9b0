"""Nucleus detection on the hematoxylin channel inside a region, as QuPath's cell detection offers.

At `CELL_MPP` µm per pixel (about 20x; level 0 when the slide is coarser): colour deconvolution
(the slide's stain vectors), Gaussian smoothing (`sigma_um`), a threshold on hematoxylin OD (Otsu
within the region, never below `min_od`), holes filled, then a marker-controlled watershed
(scikit-image) on the distance transform, markers the local maxima at least `min_distance_um`
apart, so touching nuclei are split. Nuclei outside `min_area_um2`..`max_area_um2` are dropped.
Each nucleus gets: centroid and outline (level-0 pixels), area (µm²), circularity 4πA/P², mean
hematoxylin OD, and whether it is a small round nucleus (lymphocyte-like: area <= `lymphocyte_max_um2`
circularity >= `lymphocyte_min_circularity` and minor/major axis >= `lymphocyte_min_axis_ratio`), which the stromal TILs aid counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely
from scipy import ndimage as ndi
from skimage import filters, measure, segmentation
from skimage.feature import peak_local_max

from palmares_desktop.core.slides.detections import Detections
from palmares_desktop.core.slides.reader import SlideError, SlideInfo
from palmares_desktop.core.slides.regions import Region, rasterise, read_at
from palmares_desktop.core.slides.stain import RUIFROK, StainVectors, deconvolve

CELL_MPP = 0.5
TILE_PX = 1024  # regions are processed in tiles of this many region pixels (plus a margin)
MEASUREMENTS = ("area_um2", "circularity", "axis_ratio", "hematoxylin_od_mean", "small_round")


@dataclass(frozen=True)
class CellParams:
    target_mpp: float = CELL_MPP
    sigma_um: float = 1.0
    min_od: float = 0.035  # hematoxylin OD (skimage units) below which nothing is a nucleus
    min_distance_um: float = 3.0
    min_area_um2: float = 10.0
    max_area_um2: float = 400.0
    lymphocyte_max_um2: float = 50.0
    lymphocyte_min_circularity: float = 0.8
    lymphocyte_min_axis_ratio: float = 0.6

    def to_dict(self) -> dict:
        return asdict(self)


def hematoxylin_channel(rgb: np.ndarray, stains: StainVectors, sigma_px: float) -> np.ndarray:
    channel = deconvolve(rgb, stains)[..., 0]
    return ndi.gaussian_filter(channel, sigma_px) if sigma_px > 0 else channel


def segment_nuclei(
    rgb: np.ndarray,
    pixel_um: float,
    stains: StainVectors = RUIFROK,
    params: CellParams = CellParams(),
    threshold: float | None = None,
) -> tuple[np.ndarray, float]:
    """(label image of nuclei, threshold used) for an RGB tile at `pixel_um` µm per pixel."""
    channel = hematoxylin_channel(rgb, stains, params.sigma_um / pixel_um)
    if threshold is None:
        threshold = max(
            float(filters.threshold_otsu(channel)) if channel.std() > 1e-6 else params.min_od, params.min_od
        )
    foreground = ndi.binary_fill_holes(channel > threshold)
    distance = ndi.distance_transform_edt(foreground)
    min_distance = max(int(round(params.min_distance_um / pixel_um)), 1)
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=ndi.label(foreground)[0], exclude_border=False
    )
    markers = np.zeros(distance.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = segmentation.watershed(-distance, markers, mask=foreground)
    return labels, threshold


def _nuclei_of(labels: np.ndarray, channel: np.ndarray, pixel_um: float, params: CellParams):
    """(centroid_rc, contour_rc, area_um2, circularity, axis_ratio, mean_od) per kept nucleus (grid)."""
    area_px = params.min_area_um2 / pixel_um**2, params.max_area_um2 / pixel_um**2
    for prop in measure.regionprops(labels, intensity_image=channel):
        if not area_px[0] <= prop.area <= area_px[1]:
            continue
        r0, c0, _, _ = prop.bbox
        contours = measure.find_contours(np.pad(prop.image, 1).astype(float), 0.5)
        if not contours:
            continue
        contour = max(contours, key=len) + (r0 - 1, c0 - 1)
        perimeter = prop.perimeter or 1.0
        circularity = min(4 * np.pi * prop.area / perimeter**2, 1.0)
        ratio = prop.axis_minor_length / prop.axis_major_length if prop.axis_major_length > 0 else 1.0
        yield prop.centroid, contour, prop.area * pixel_um**2, circularity, ratio, float(prop.intensity_mean)


def _tiles(shape: tuple[int, int], size: int) -> Iterator[tuple[int, int, int, int]]:
    for r in range(0, shape[0], size):
        for c in range(0, shape[1], size):
            yield r, c, min(r + size, shape[0]), min(c + size, shape[1])


def detect_in_region(
    region: Region, mask: np.ndarray, stains: StainVectors, params: CellParams = CellParams()
) -> Detections:
    """Nuclei whose centroid lies in `mask` on the region's grid, as level-0 detections."""
    pixel_um = region.mpp or params.target_mpp
    margin = int(np.ceil(2 * np.sqrt(params.max_area_um2 / np.pi) / pixel_um))
    rgb = region.rgb
    centroids, outlines, values = [], [], []
    if not mask.any():
        return Detections.empty(MEASUREMENTS)
    # One threshold for the whole region (Otsu on its smoothed hematoxylin inside the mask).
    channel_all = hematoxylin_channel(rgb, stains, params.sigma_um / pixel_um)
    inner = channel_all[mask]
    threshold = params.min_od
    if inner.size and inner.std() > 1e-6:
        threshold = max(float(filters.threshold_otsu(inner)), params.min_od)
    for r0, c0, r1, c1 in _tiles(rgb.shape[:2], TILE_PX):
        rr0, cc0 = max(r0 - margin, 0), max(c0 - margin, 0)
        rr1, cc1 = min(r1 + margin, rgb.shape[0]), min(c1 + margin, rgb.shape[1])
        if not mask[r0:r1, c0:c1].any():
            continue
        labels, _ = segment_nuclei(rgb[rr0:rr1, cc0:cc1], pixel_um, stains, params, threshold)
        channel = channel_all[rr0:rr1, cc0:cc1]
        for centroid, contour, area, circ, ratio, od in _nuclei_of(labels, channel, pixel_um, params):
            row, col = centroid[0] + rr0, centroid[1] + cc0
            ir, ic = int(row), int(col)
            if not (r0 <= ir < r1 and c0 <= ic < c1) or not mask[ir, ic]:
                continue  # each nucleus once: in the tile holding its centroid, inside the region
            small_round = (
                area <= params.lymphocyte_max_um2
                and circ >= params.lymphocyte_min_circularity
                and ratio >= params.lymphocyte_min_axis_ratio
            )
            centroids.append((col, row))
            outlines.append(np.c_[contour[:, 1] + cc0, contour[:, 0] + rr0])
            values.append((area, circ, ratio, od, float(small_round)))
    if not centroids:
        return Detections.empty(MEASUREMENTS)
    # Grid (pixel centres) to level-0 pixels.
    ds, x0, y0 = region.downsample, region.x0, region.y0
    to_level0 = [np.asarray(o) * ds + (x0 + 0.5 * ds, y0 + 0.5 * ds) for o in outlines]
    points = np.asarray(centroids) * ds + (x0 + 0.5 * ds, y0 + 0.5 * ds)
    return Detections.from_outlines(points, to_level0, np.asarray(values, np.float64), MEASUREMENTS)


def detect_cells(
    path: str | Path,
    info: SlideInfo,
    geometry,
    stains: StainVectors = RUIFROK,
    params: CellParams = CellParams(),
) -> tuple[Detections, dict]:
    """Nuclei inside an annotation outline (level-0 shapely geometry); (detections, read provenance)."""
    if not isinstance(geometry, shapely.Geometry) or geometry.is_empty:
        raise SlideError("Cell detection needs a region (an annotation outline).")
    kwargs = {"target_mpp": params.target_mpp} if info.mpp_x else {"downsample": 1.0}
    region = read_at(path, info, geometry.bounds, **kwargs)
    mask = rasterise(geometry, region)
    return detect_in_region(region, mask, stains, params), region.provenance()

"""Per-lesion PET numbers (DOMAIN §2) and the subject totals the outcome model uses.

Arrays are numpy in SimpleITK order (z, y, x); spacing is (x, y, z) in mm as SimpleITK gives it.
Every value comes from the one SUV image passed in; SUL = SUV × `sul_ratio` (Janmahasatian LBM /
body weight), so SULpeak is the SUVpeak scaled, never a second image.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

# A 1 mL (1 cm³) sphere: r = (3 / 4π)^(1/3) cm ≈ 6.2035 mm.
PEAK_RADIUS_MM = (3.0 / (4.0 * math.pi)) ** (1.0 / 3.0) * 10.0
PEAK_VARIANT_LOCAL = "IBSI local peak (1 mL sphere centred on the hottest ROI voxel)"
PEAK_VARIANT_GLOBAL = "IBSI global peak (max over 1 mL spheres centred on every ROI voxel)"


@dataclass
class PetLesionMetrics:
    voxel_count: int
    mtv_ml: float
    suv_max: float
    suv_mean: float
    suv_sd: float
    suv_peak: float  # the local peak (the one PERCIST-style reports usually mean)
    suv_peak_local: float
    suv_peak_global: float
    sul_peak: float | None
    tlg: float
    smaller_than_peak_sphere: bool
    peak_variant: str = PEAK_VARIANT_LOCAL
    peak_radius_mm: float = PEAK_RADIUS_MM
    centroid_mm: tuple[float, float, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def sphere_offsets(spacing_xyz: Sequence[float], radius_mm: float = PEAK_RADIUS_MM) -> np.ndarray:
    """(n, 3) integer z,y,x offsets of the voxels whose centre lies within `radius_mm` of the centre,
    built in mm from the real (possibly anisotropic) spacing."""
    sx, sy, sz = (float(s) for s in spacing_xyz)
    half = [int(math.floor(radius_mm / s)) for s in (sz, sy, sx)]
    grids = np.mgrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1, -half[2] : half[2] + 1]
    dist2 = (grids[0] * sz) ** 2 + (grids[1] * sy) ** 2 + (grids[2] * sx) ** 2
    inside = dist2 <= radius_mm**2 + 1e-9
    return np.stack([g[inside] for g in grids], axis=1)


def sphere_kernel(spacing_xyz: Sequence[float], radius_mm: float = PEAK_RADIUS_MM) -> np.ndarray:
    offsets = sphere_offsets(spacing_xyz, radius_mm)
    half = np.abs(offsets).max(axis=0)
    kernel = np.zeros(tuple(2 * half + 1), dtype=np.float64)
    kernel[tuple((offsets + half).T)] = 1.0
    return kernel


def peak_values(suv: np.ndarray, mask: np.ndarray, spacing_xyz: Sequence[float]) -> tuple[float, float]:
    """(local, global) SUVpeak. The 1 mL sphere mean is computed at every ROI voxel (only the ROI's
    bounding box is convolved); local = at the hottest voxel (the best one when several tie, as IBSI
    says), global = the maximum over the ROI."""
    kernel = sphere_kernel(spacing_xyz)
    half = np.array(kernel.shape) // 2
    where = np.argwhere(mask)
    lo = np.maximum(where.min(axis=0) - half, 0)
    hi = np.minimum(where.max(axis=0) + half + 1, suv.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = suv[box].astype(np.float64)
    # sum / count over the in-image part of the sphere, as the local peak does at the image border
    total = ndimage.correlate(sub, kernel, mode="constant", cval=0.0)
    count = ndimage.correlate(np.ones_like(sub), kernel, mode="constant", cval=0.0)
    means = total / count
    inside = mask[box]
    sub_suv = suv[box]
    ties = inside & (sub_suv == sub_suv[inside].max())
    return float(means[ties].max()), float(means[inside].max())


def lesion_metrics(
    suv: np.ndarray,
    mask: np.ndarray,
    spacing_xyz: Sequence[float],
    sul_ratio: float | None = None,
    origin_xyz: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> PetLesionMetrics:
    """SUVmax/mean/SD, SUVpeak (local and global), SULpeak, MTV (mL), TLG and the centroid (LPS mm)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != suv.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the PET's {suv.shape}")
    count = int(mask.sum())
    if count == 0:
        raise ValueError("the lesion mask is empty")
    values = suv[mask].astype(np.float64)
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    mtv = count * voxel_ml
    local, best = peak_values(suv, mask, spacing_xyz)
    mean = float(values.mean())
    return PetLesionMetrics(
        voxel_count=count,
        mtv_ml=mtv,
        suv_max=float(values.max()),
        suv_mean=mean,
        suv_sd=float(values.std()),
        suv_peak=local,
        suv_peak_local=local,
        suv_peak_global=best,
        sul_peak=local * sul_ratio if sul_ratio else None,
        tlg=mean * mtv,
        smaller_than_peak_sphere=mtv < 1.0,
        centroid_mm=centroid_mm(mask, spacing_xyz, origin_xyz, direction),
    )


def centroid_mm(
    mask: np.ndarray,
    spacing_xyz: Sequence[float],
    origin_xyz: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> tuple[float, float, float]:
    """Centre of the mask's voxel centres in patient coordinates (LPS mm)."""
    zyx = np.argwhere(mask).mean(axis=0)
    index_xyz = zyx[::-1]
    matrix = np.asarray(direction, dtype=float).reshape(3, 3) * np.asarray(spacing_xyz, dtype=float)
    return tuple(float(v) for v in np.asarray(origin_xyz, dtype=float) + matrix @ index_xyz)


def ct_hu_stats(hu: np.ndarray, mask: np.ndarray) -> dict:
    values = hu[np.asarray(mask, dtype=bool)].astype(np.float64)
    return {"hu_mean": float(values.mean()), "hu_sd": float(values.std()), "ct_voxel_count": int(values.size)}


def dmax_mm(centroids: Sequence[Sequence[float]]) -> float:
    """Largest distance between two lesion centroids (0 with fewer than two lesions)."""
    best = 0.0
    for a, b in itertools.combinations(centroids, 2):
        best = max(best, float(np.linalg.norm(np.asarray(a) - np.asarray(b))))
    return best


def subject_totals(lesions: Sequence[dict]) -> dict:
    """Totals over lesions given as dicts with at least name, organ, and (for PET) mtv_ml, tlg,
    centroid_mm, sul_peak; for RECIST recist_status and the diameters."""
    pet = [x for x in lesions if x.get("mtv_ml") is not None]
    per_organ: dict[str, int] = {}
    for lesion in lesions:
        organ = lesion.get("organ") or "unspecified"
        per_organ[organ] = per_organ.get(organ, 0) + 1
    centroids = [x["centroid_mm"] for x in lesions if x.get("centroid_mm") is not None]
    targets = [x for x in lesions if (x.get("recist_status") or "").lower() == "target"]
    recist_sum = 0.0
    for lesion in targets:
        # RECIST 1.1: lymph nodes by their short axis, other targets by the longest diameter
        is_node = "node" in (lesion.get("organ") or "").lower()
        key = "recist_short_axis_mm" if is_node else "recist_long_axis_mm"
        recist_sum += float(lesion.get(key) or 0.0)
    with_sul = [x for x in pet if x.get("sul_peak") is not None]
    hottest = max(with_sul, key=lambda x: x["sul_peak"]) if with_sul else None
    return {
        "total_mtv_ml": float(sum(x["mtv_ml"] for x in pet)),
        "total_tlg": float(sum(x["tlg"] for x in pet)),
        "lesion_count": len(lesions),
        "lesions_per_organ": per_organ,
        "dmax_mm": dmax_mm(centroids),
        "recist_sum_mm": recist_sum,
        "recist_target_count": len(targets),
        "percist_target": (
            {"name": hottest["name"], "sul_peak": hottest["sul_peak"]} if hottest is not None else None
        ),
    }

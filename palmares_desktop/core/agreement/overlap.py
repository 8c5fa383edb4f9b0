"""Agreement between two readers' masks of one lesion (DOMAIN.md §8).

Conventions, stated because tools differ:
- Dice = 2|A∩B|/(|A|+|B|), Jaccard = Dice/(2-Dice). Both masks empty: both readers agree there is
  nothing, Dice = Jaccard = 1. One empty: 0.
- Surface distances are measured between the boundary voxels of each mask (a voxel of the mask with
  a 6-connected neighbour outside it), in mm using the voxel spacing; the grid's direction is a
  rotation, which preserves distances. HD95 = max of the two *directed* 95th percentiles (not the
  pooled percentile some tools report). One mask empty: the distance is undefined (None), both
  empty: 0.
- Volume difference = volume(B) - volume(A) in mL, and relative to the mean of the two.

The two masks must be on the same grid: resampling one reader onto another's grid is a choice the
caller makes (and records), not a silent step here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from palmares_desktop.core.errors import PalmaresError


class AgreementError(PalmaresError):
    """Masks that cannot be compared (message is a plain sentence)."""


@dataclass(frozen=True)
class MaskAgreement:
    dice: float
    jaccard: float
    hd95_mm: float | None
    hd_max_mm: float | None
    volume_a_ml: float
    volume_b_ml: float
    volume_difference_ml: float
    volume_difference_relative: float | None


def _binary(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    return mask if mask.dtype == bool else mask != 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = _binary(a), _binary(b)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def jaccard_from_dice(d: float) -> float:
    return d / (2.0 - d)


def surface_points_mm(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Boundary voxels of `mask` as an (n, ndim) array of positions in mm (index x spacing)."""
    mask = _binary(mask)
    inner = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    boundary = mask & ~inner
    return np.argwhere(boundary) * np.asarray(spacing, dtype=float)


def directed_surface_distances_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """For each boundary voxel of `a`, the distance in mm to the nearest boundary voxel of `b`."""
    a, b = _binary(a), _binary(b)
    structure = ndimage.generate_binary_structure(b.ndim, 1)
    b_boundary = b & ~ndimage.binary_erosion(b, structure=structure)
    a_boundary = a & ~ndimage.binary_erosion(a, structure=structure)
    # Distance of every voxel to the nearest boundary voxel of b, exact Euclidean in mm.
    to_b = ndimage.distance_transform_edt(~b_boundary, sampling=spacing)
    return to_b[a_boundary]


def _crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of their union plus one voxel: the distance transform then
    runs on the lesion's neighbourhood, not the whole scan, with the same result (every boundary
    voxel of both masks is inside the box). Both masks must not be empty together."""
    union = a | b
    box = []
    for axis in range(union.ndim):
        present = np.flatnonzero(union.any(axis=tuple(i for i in range(union.ndim) if i != axis)))
        box.append(slice(max(present[0] - 1, 0), min(present[-1] + 2, union.shape[axis])))
    return a[tuple(box)], b[tuple(box)]


def _surface_percentiles(a, b, spacing, percentiles: tuple[float, ...]) -> list[float | None]:
    """max(directed p a->b, directed p b->a) for each p; 0 when both masks are empty, None when one is."""
    a, b = _binary(a), _binary(b)
    if not a.any() and not b.any():
        return [0.0 for _ in percentiles]
    if not a.any() or not b.any():
        return [None for _ in percentiles]
    a, b = _crop_to_union(a, b)
    ab = directed_surface_distances_mm(a, b, spacing)
    ba = directed_surface_distances_mm(b, a, spacing)
    return [float(max(np.percentile(ab, p), np.percentile(ba, p))) for p in percentiles]


def hausdorff_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...], percentile: float = 95.0):
    """max(directed percentile a->b, directed percentile b->a), or None when one mask is empty."""
    return _surface_percentiles(a, b, spacing, (percentile,))[0]


def mask_agreement(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> MaskAgreement:
    """Every pairwise number for two masks on one grid (`spacing` in mm, in the arrays' axis order)."""
    a, b = _binary(a), _binary(b)
    if a.shape != b.shape:
        raise AgreementError(
            f"The two segmentations are on different grids ({a.shape} and {b.shape} voxels): "
            "resample one onto the other's grid first."
        )
    if len(spacing) != a.ndim or any(s <= 0 for s in spacing):
        raise AgreementError(f"The voxel spacing {spacing} does not fit a {a.ndim}-D mask.")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if a.any() or b.any():
        a, b = _crop_to_union(a, b)  # a lesion in a whole-body scan: work on its neighbourhood
    d = dice(a, b)
    hd95, hd_max = _surface_percentiles(a, b, spacing, (95.0, 100.0))
    va, vb = float(a.sum()) * voxel_ml, float(b.sum()) * voxel_ml
    mean_volume = (va + vb) / 2.0
    return MaskAgreement(
        dice=d,
        jaccard=jaccard_from_dice(d),
        hd95_mm=hd95,
        hd_max_mm=hd_max,
        volume_a_ml=va,
        volume_b_ml=vb,
        volume_difference_ml=vb - va,
        volume_difference_relative=(vb - va) / mean_volume if mean_volume > 0 else None,
    )

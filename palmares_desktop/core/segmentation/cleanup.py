"""Clean-up of a binary lesion mask (CT or PET): fill holes, remove islands, grow or shrink by a
distance in mm, combine two masks, and interpolate between the axial slices a reader drew.

Masks are numpy bool (z, y, x); spacings are in the same (z, y, x) order (the reverse of SimpleITK's
GetSpacing()). Distances are Euclidean in mm on the real (anisotropic) voxel spacing, from voxel
centre to voxel centre: growing by r adds every voxel whose centre lies within r mm (inclusive) of a
mask voxel's centre, i.e. a dilation by the ball of radius r mm, not by a count of voxels.
Components are 26-connected (faces, edges and corners), as in the threshold tools.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from palmares_desktop.core.segmentation.geometry import SegmentationError

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
_EPS_MM = 1e-6  # a voxel exactly at the distance counts as within it
COMBINE_OPS = ("union", "intersection", "subtract")


class CleanupError(SegmentationError):
    """A clean-up cannot run on this mask; the message says why in one sentence."""


def _bool(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise CleanupError(f"A mask is 3-D (z, y, x); this one has {mask.ndim} dimensions.")
    return mask.astype(bool, copy=False)


def _bbox(mask: np.ndarray, pad) -> tuple[slice, ...]:
    """Bounding box of `mask` widened by `pad` voxels per axis, clipped to the array (found from the
    projections on each axis: much faster than the voxel coordinates on a whole CT)."""
    z = np.flatnonzero(mask.any(axis=(1, 2)))
    core = mask[z[0] : z[-1] + 1]
    y = np.flatnonzero(core.any(axis=(0, 2)))
    x = np.flatnonzero(core[:, y[0] : y[-1] + 1].any(axis=(0, 1)))
    return tuple(
        slice(max(int(a[0]) - p, 0), min(int(a[-1]) + 1 + p, n))
        for a, p, n in zip((z, y, x), pad, mask.shape, strict=True)
    )


def _nonempty(mask: np.ndarray, what: str = "The mask") -> np.ndarray:
    mask = _bool(mask)
    if not mask.any():
        raise CleanupError(f"{what} is empty: there is nothing to clean up.")
    return mask


def _spacing(spacing_zyx) -> np.ndarray:
    spacing = np.asarray(spacing_zyx, dtype=float)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise CleanupError(f"The voxel spacing {spacing_zyx!r} is not three positive sizes in mm (z, y, x).")
    return spacing


# ----------------------------------------------------------------------------- holes and islands
def fill_holes(mask: np.ndarray, per_slice: bool = False) -> np.ndarray:
    """Fill the background enclosed by the mask: in 3-D (background not face-connected to the outside),
    or on each axial slice separately (`per_slice`: a hole open along z in 3-D, such as a vessel
    crossing the lesion, is filled on every slice that encloses it)."""
    mask = _nonempty(mask)
    out = mask.copy()
    box = _bbox(mask, (1, 1, 1))
    if per_slice:
        crop = out[box]
        for k in range(crop.shape[0]):
            if crop[k].any():
                crop[k] = ndimage.binary_fill_holes(crop[k])
    else:
        out[box] = ndimage.binary_fill_holes(mask[box])
    return out


def components(mask: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """(box, labels, sizes) of the 26-connected components: `labels` covers the mask's bounding box
    `box`; `sizes[i]` is the voxel count of label i (sizes[0] = 0, the background)."""
    mask = _nonempty(mask)
    box = _bbox(mask, (0, 0, 0))
    labels, _ = ndimage.label(mask[box], structure=_STRUCTURE)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return box, labels, sizes


def count_parts(mask: np.ndarray) -> int:
    """The number of 26-connected components (0 for an empty mask)."""
    mask = _bool(mask)
    return int(np.count_nonzero(components(mask)[2])) if mask.any() else 0


def remove_islands(mask: np.ndarray, min_ml: float | None = None, spacing_zyx=None) -> np.ndarray:
    """Keep the largest 26-connected component (the first in scan order on a tie), or, with `min_ml`,
    every component of at least that volume (needs `spacing_zyx`)."""
    box, labels, sizes = components(mask)
    out = np.zeros(np.shape(mask), dtype=bool)
    if min_ml is None:
        out[box] = labels == int(np.argmax(sizes))
        return out
    if spacing_zyx is None:
        raise CleanupError("Removing islands below a volume needs the voxel spacing.")
    voxel_ml = float(np.prod(_spacing(spacing_zyx))) / 1000.0
    keep = np.flatnonzero(sizes * voxel_ml >= min_ml - 1e-12)
    keep = keep[keep > 0]
    if keep.size == 0:
        raise CleanupError(
            f"No part of the mask is as large as {min_ml:g} mL (the largest is {sizes.max() * voxel_ml:.3g} mL)."
        )
    out[box] = np.isin(labels, keep)
    return out


# ----------------------------------------------------------------------------- grow and shrink
def _reach(mm: float, spacing: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(np.floor(mm / s + 1e-9)) for s in spacing)  # type: ignore[return-value]


def reach_mm(mm: float, spacing_zyx) -> tuple[float, float, float]:
    """How far a ball of `mm` reaches along each axis (z, y, x) on this grid: whole voxels only, e.g.
    2 mm on 2.5 x 1.5625 x 1.5625 mm reaches (0, 1.5625, 1.5625): no slice along z."""
    spacing = _spacing(spacing_zyx)
    return tuple(float(k * s) for k, s in zip(_reach(mm, spacing), spacing, strict=True))  # type: ignore[return-value]


def _check_mm(mm: float) -> float:
    if not mm > 0:
        raise CleanupError(f"The distance ({mm:g} mm) must be positive.")
    return float(mm)


def grow_mm(mask: np.ndarray, mm: float, spacing_zyx) -> np.ndarray:
    """The mask dilated by the ball of `mm` (every voxel whose centre is within `mm` of a mask voxel's
    centre), computed with the Euclidean distance transform on the voxel spacing."""
    mask, mm, spacing = _nonempty(mask), _check_mm(mm), _spacing(spacing_zyx)
    box = _bbox(mask, [r + 1 for r in _reach(mm, spacing)])
    distance = ndimage.distance_transform_edt(~mask[box], sampling=spacing)
    out = mask.copy()
    out[box] = distance <= mm + _EPS_MM
    return out


def shrink_mm(mask: np.ndarray, mm: float, spacing_zyx) -> np.ndarray:
    """The mask eroded by the ball of `mm`: a voxel stays when no background voxel centre lies within
    `mm` of its centre (outside the scan counts as background). May be empty."""
    mask, mm, spacing = _nonempty(mask), _check_mm(mm), _spacing(spacing_zyx)
    box = _bbox(mask, (0, 0, 0))
    crop = np.pad(mask[box], 1, constant_values=False)  # the background just outside the box / scan
    distance = ndimage.distance_transform_edt(crop, sampling=spacing)[1:-1, 1:-1, 1:-1]
    out = np.zeros_like(mask)
    out[box] = distance > mm + _EPS_MM
    return out


# ----------------------------------------------------------------------------- two masks
def combine(a: np.ndarray, b: np.ndarray, op: str) -> np.ndarray:
    """`a` union / intersection / subtract (a and not b) `b`; both on the same grid."""
    a, b = _bool(a), _bool(b)
    if a.shape != b.shape:
        raise CleanupError(
            f"The two masks are on different grids ({'x'.join(map(str, a.shape[::-1]))} and "
            f"{'x'.join(map(str, b.shape[::-1]))} voxels): combine masks of the same series."
        )
    if op == "union":
        return a | b
    if op in ("intersection", "intersect"):
        return a & b
    if op == "subtract":
        return a & ~b
    raise CleanupError(f"The operation {op!r} is not one of {', '.join(COMBINE_OPS)}.")


# ----------------------------------------------------------------------------- interpolation
def drawn_slices(mask: np.ndarray) -> list[int]:
    """The axial slices (z indices) holding at least one mask voxel."""
    return [int(k) for k in np.flatnonzero(_bool(mask).any(axis=(1, 2)))]


def _signed_distance(plane: np.ndarray, sampling) -> np.ndarray:
    """In-plane signed distance (mm): negative inside (to the nearest outside voxel centre), positive
    outside (to the nearest inside voxel centre); never zero on a drawn slice."""
    padded = np.pad(plane, 1, constant_values=False)  # background around it, even at the scan's edge
    outside = ndimage.distance_transform_edt(~padded, sampling=sampling)
    inside = ndimage.distance_transform_edt(padded, sampling=sampling)
    return (outside - inside)[1:-1, 1:-1]


def interpolate_slices(mask: np.ndarray, spacing_zyx=None) -> np.ndarray:
    """Shape-based interpolation between the axial slices a reader drew: each empty slice between two
    drawn ones gets the zero level (inclusive) of the linear blend, by slice distance, of the two
    drawn slices' signed distance maps (Raya and Udupa 1990), not a copy of the nearest one. Drawn
    slices and slices outside the first and last drawn one are left as they are. The in-plane
    distances use the (y, x) part of `spacing_zyx` when given."""
    mask = _nonempty(mask)
    drawn = drawn_slices(mask)
    if len(drawn) < 2:
        raise CleanupError(f"Interpolation needs at least two drawn axial slices; the mask has {len(drawn)}.")
    gaps = [(k0, k1) for k0, k1 in zip(drawn, drawn[1:], strict=False) if k1 - k0 > 1]
    if not gaps:
        raise CleanupError(
            f"Every slice from {drawn[0]} to {drawn[-1]} is drawn: there is no gap to interpolate."
        )
    sampling = None if spacing_zyx is None else _spacing(spacing_zyx)[1:]
    box = _bbox(mask, (0, 0, 0))[1:]  # the blend is inside one of the two shapes: their boxes suffice
    out = mask.copy()
    distances: dict[int, np.ndarray] = {}
    for k0, k1 in gaps:
        for k in (k0, k1):
            if k not in distances:
                distances[k] = _signed_distance(mask[k][box], sampling)
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            blend = (1.0 - t) * distances[k0] + t * distances[k1]
            out[k][box] = blend <= 0.0
    return out

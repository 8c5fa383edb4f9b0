"""Editing strokes on a working label array in display order (see core/placement.py): a sphere of a
diameter in mm, and a fill of the background region enclosed by the outline (on one axial slice or
in 3D). Qt-free, so the CT/PET room, a script or a napari plugin compute the same voxels.

Geometry: distances are Euclidean in world mm between voxel centres, through the placement's own
index -> world map (anisotropic spacing and an oblique grid honoured), so a sphere is round in mm,
not in voxels. A voxel belongs to the sphere when its centre lies within diameter / 2 of the centre
(inclusive). By default the centre is the centre of the voxel under the point, so the sphere is
symmetric about the slice the reader sees and always holds that voxel.

Fill: the connected background region under the click (4-connected on a slice, 6-connected in 3D,
as paint programs and ITK-SNAP fill) becomes `value`, provided the outline encloses it; a region that
reaches the edge of the slice (or of the volume) is not enclosed and the fill is refused in words.

Each function writes the mask in place and returns a `Stroke` (the box changed and the values the
box held before), which `ReadingSession` records as one undoable step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from palmares_desktop.core.placement import Placement
from palmares_desktop.core.segmentation.geometry import SegmentationError

_EPS_MM = 1e-6  # a voxel centre exactly at the radius is inside


class StrokeError(SegmentationError):
    """A stroke cannot be made here; the message says why in one sentence."""


@dataclass(frozen=True)
class Stroke:
    """What one stroke changed: a box of the mask and the box's values before it (after: the mask)."""

    box: tuple[slice, ...]
    before: np.ndarray
    changed: int  # voxels whose value changed


# ------------------------------------------------------------------ helpers
def voxels_ml(placement: Placement, voxels: int) -> float:
    """The volume of `voxels` voxels of the grid, in mL."""
    return float(voxels) * float(np.prod(placement.spacing)) / 1000.0


def voxel_under(placement: Placement, world_zyx) -> tuple[int, int, int] | None:
    """The display index (slice, row, column) of the voxel containing a world point, or None when
    the point lies outside the grid."""
    index = np.rint(placement.world_to_display(np.asarray(world_zyx, dtype=float)[-3:])).astype(int)
    shape = placement.display_shape
    if np.any(index < 0) or np.any(index >= np.asarray(shape)):
        return None
    return tuple(int(i) for i in index)  # type: ignore[return-value]


def _apply(mask: np.ndarray, box: tuple[slice, ...], where: np.ndarray, value: int) -> Stroke | None:
    region = mask[box]  # a view: writing it writes the mask
    before = region.copy()
    target = where & (region != value)
    if not target.any():
        return None
    region[target] = value
    return Stroke(box, before, int(target.sum()))


# ------------------------------------------------------------------ sphere
def sphere_region(
    placement: Placement, centre_world_zyx, diameter_mm: float, snap_to_voxel: bool = True
) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """The voxels of a sphere of `diameter_mm` around a world (z, y, x) point, as (box of the display
    array, boolean array of the box's shape), or None when the sphere misses the grid."""
    diameter = float(diameter_mm)
    if not np.isfinite(diameter) or diameter <= 0:
        raise StrokeError(f"The brush diameter must be a positive size in mm, not {diameter_mm!r}.")
    radius = diameter / 2.0
    centre = placement.world_to_display(np.asarray(centre_world_zyx, dtype=float)[-3:])
    if snap_to_voxel:
        centre = np.rint(centre)
    linear = placement.linear  # display index step -> world mm step
    # Half-extent in index units along each display axis: |d_a| <= r * |row a of L^-1|.
    half = radius * np.linalg.norm(np.linalg.inv(linear), axis=1)
    shape = np.asarray(placement.display_shape)
    low = np.maximum(np.ceil(centre - half - _EPS_MM).astype(int), 0)
    high = np.minimum(np.floor(centre + half + _EPS_MM).astype(int) + 1, shape)
    if np.any(high <= low):
        return None
    box = tuple(slice(int(lo), int(hi)) for lo, hi in zip(low, high, strict=True))
    axes = np.ogrid[box]  # absolute display indices of the box, broadcastable
    offsets = [a.astype(float) - c for a, c in zip(axes, centre, strict=True)]
    # world offset w = L @ d, summed per component without building an (N, 3) array
    dist2 = sum(sum(linear[w, a] * offsets[a] for a in range(3)) ** 2 for w in range(3))
    inside = dist2 <= radius**2 + _EPS_MM
    if not inside.any():
        return None
    return box, inside


def sphere_stroke(
    mask: np.ndarray,
    placement: Placement,
    centre_world_zyx,
    diameter_mm: float,
    value: int = 1,
    snap_to_voxel: bool = True,
) -> Stroke | None:
    """Paint (`value` > 0) or erase (`value` 0) a sphere of `diameter_mm` around a world point into
    `mask` (display order, `placement`'s grid), in place. None when no voxel changed."""
    _check(mask, placement)
    region = sphere_region(placement, centre_world_zyx, diameter_mm, snap_to_voxel)
    if region is None:
        return None
    box, inside = region
    return _apply(mask, box, inside, value)


def dab_centres(placement: Placement, start_world_zyx, end_world_zyx, diameter_mm: float) -> np.ndarray:
    """The sphere centres of a drag from `start` (already painted, excluded) to `end` (included):
    evenly spaced at most a quarter of the diameter apart, so the spheres leave no gap (but never
    closer than half the finest voxel spacing). (n, 3) world (z, y, x) mm."""
    if not np.isfinite(float(diameter_mm)) or float(diameter_mm) <= 0:
        raise StrokeError(f"The brush diameter must be a positive size in mm, not {diameter_mm!r}.")
    start = np.asarray(start_world_zyx, dtype=float)[-3:]
    end = np.asarray(end_world_zyx, dtype=float)[-3:]
    step = max(float(diameter_mm) / 4.0, min(placement.scale) / 2.0)
    count = max(1, int(np.ceil(np.linalg.norm(end - start) / step)))
    t = np.arange(1, count + 1, dtype=float)[:, np.newaxis] / count
    return start + t * (end - start)


# -------------------------------------------------------------------- fill
def _bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    hits = [
        np.flatnonzero(mask.any(axis=tuple(b for b in range(mask.ndim) if b != a))) for a in range(mask.ndim)
    ]
    if any(h.size == 0 for h in hits):
        return None
    return tuple(slice(int(h[0]), int(h[-1]) + 1) for h in hits)


def enclosed_region(mask: np.ndarray, seed: tuple[int, ...]) -> tuple[tuple[slice, ...], np.ndarray]:
    """The background component of `mask` (2-D or 3-D) holding `seed`, face-connected (4 or 6
    neighbours), as (box, boolean array of the box). Refused when the seed is on the outline or the
    component reaches the array's edge (the outline does not enclose it)."""
    where = "slice" if mask.ndim == 2 else "volume"
    if mask[seed] != 0:
        raise StrokeError("The click is on the lesion already: click inside the hole its outline encloses.")
    bbox = _bbox(mask)
    # An enclosed component lies strictly inside the outline's bounding box: its extreme voxels'
    # outer neighbours are outline. So only that box (one voxel wider) is labelled, and a component
    # that touches the widened box's edge reaches the array's edge through background.
    if bbox is None or any(not (b.start < s < b.stop - 1) for b, s in zip(bbox, seed, strict=True)):
        raise StrokeError(_open(where))
    box = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(bbox, mask.shape, strict=True))
    local = mask[box] == 0
    labels, _ = ndimage.label(local, structure=ndimage.generate_binary_structure(mask.ndim, 1))
    component = labels == labels[tuple(s - b.start for s, b in zip(seed, box, strict=True))]
    for axis in range(mask.ndim):
        if component.take(0, axis=axis).any() or component.take(-1, axis=axis).any():
            raise StrokeError(_open(where))
    return box, component


def fill_stroke(
    mask: np.ndarray, placement: Placement, seed_world_zyx, three_d: bool = False, value: int = 1
) -> Stroke:
    """Fill the background region enclosed by the outline under a world point with `value`: on the
    point's axial slice (display axis 0) or, with `three_d`, the enclosed 3-D region. In place."""
    _check(mask, placement)
    if int(value) == 0:
        raise StrokeError("A fill paints the lesion's label, not the background.")
    seed = voxel_under(placement, seed_world_zyx)
    if seed is None:
        raise StrokeError("The click is outside the series: click inside the image.")
    if three_d:
        box, component = enclosed_region(mask, seed)
    else:
        plane_box, component = enclosed_region(mask[seed[0]], seed[1:])
        box = (slice(seed[0], seed[0] + 1), *plane_box)
        component = component[np.newaxis]
    stroke = _apply(mask, box, component, int(value))
    if stroke is None:  # cannot happen: the component is background and value is not
        raise StrokeError("Nothing to fill there.")
    return stroke


def _open(where: str) -> str:
    return (
        f"That region is not enclosed by the outline (it reaches the edge of the {where}): "
        "close the outline first, or click inside it."
    )


def _check(mask: np.ndarray, placement: Placement) -> None:
    if tuple(mask.shape) != tuple(placement.display_shape):
        raise StrokeError(
            f"The mask's shape {tuple(mask.shape)} is not the series' grid {placement.display_shape}."
        )

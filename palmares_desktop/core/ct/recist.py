"""RECIST 1.1 diameters from a mask: the longest axial diameter and its perpendicular, in mm.

Measured between voxel centres (a voxel belongs to the lesion when its centre is inside), on the
axial slice where the longest diameter is largest. The perpendicular is the lesion's extent on
that slice across the long axis (the short axis, as a reader's second caliper would measure it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _longest_chord(points: np.ndarray) -> tuple[float, np.ndarray]:
    from scipy.spatial import ConvexHull, QhullError  # here: scipy.spatial adds 0.2 s to every start

    if len(points) < 2:
        return 0.0, np.array([1.0, 0.0])
    candidates = points
    if len(points) > 3:
        try:
            candidates = points[ConvexHull(points).vertices]
        except QhullError:  # collinear points
            candidates = points
    diff = candidates[:, None, :] - candidates[None, :, :]
    dist = np.linalg.norm(diff, axis=2)
    i, j = np.unravel_index(np.argmax(dist), dist.shape)
    length = float(dist[i, j])
    axis = diff[i, j] / length if length > 0 else np.array([1.0, 0.0])
    return length, axis


def recist_diameters(mask: np.ndarray, spacing_xyz: Sequence[float]) -> dict:
    """{'recist_long_axis_mm', 'recist_short_axis_mm', 'recist_slice'} (z index) for a (z, y, x) mask."""
    mask = np.asarray(mask, dtype=bool)
    sx, sy = float(spacing_xyz[0]), float(spacing_xyz[1])
    best = {"recist_long_axis_mm": 0.0, "recist_short_axis_mm": 0.0, "recist_slice": None}
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        yx = np.argwhere(mask[z])
        points = np.stack([yx[:, 1] * sx, yx[:, 0] * sy], axis=1)
        length, axis = _longest_chord(points)
        if length <= best["recist_long_axis_mm"] and best["recist_slice"] is not None:
            continue
        across = points @ np.array([-axis[1], axis[0]])
        best = {
            "recist_long_axis_mm": length,
            "recist_short_axis_mm": float(across.max() - across.min()),
            "recist_slice": int(z),
        }
    return best

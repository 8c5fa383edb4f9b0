"""Viewing placement with an exact inverse: stored voxel grid <-> display array + world transform.

A stored image (SimpleITK: index (i, j, k) along x, y, z, world point = origin + D · diag(spacing) ·
index, in LPS mm) is shown as a (z, y, x) array whose axes follow the patient's LPS axes, so that an
axial slice reads as radiologists read it: anterior up, the patient's right on the screen's left, and
superior slices at higher slider positions. Reorientation is a pure permutation and flip of axes, never
a resampling, so every displayed voxel IS a stored voxel and the inverse is exact (bit for bit).

Whatever the permutation cannot absorb (an oblique acquisition) stays in `rotate`; the display's
world transform is napari's: world = rotate · diag(scale) · display_index + translate, with world in
(z, y, x) LPS mm order. Nothing here imports Qt or napari, so a napari plugin can reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
import SimpleITK as sitk

# A rotation this close to the identity is none: the same tolerance SimpleITK applies to directions.
ROTATION_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Placement:
    """How one stored grid is shown. Build it with `Placement.of(image)` or `Placement.for_grid(...)`.

    `stored_axis[a]` is the stored index axis (0 = i/x, 1 = j/y, 2 = k/z) shown along display axis
    `a` (0 = slices, 1 = rows, 2 = columns); `flipped[a]` says the display runs against it.
    """

    size: tuple[int, int, int]  # stored (nx, ny, nz)
    spacing: tuple[float, float, float]  # stored (sx, sy, sz) mm
    origin: tuple[float, float, float]  # stored (x, y, z) mm: centre of voxel (0, 0, 0)
    direction: tuple[float, ...]  # stored 3x3, row-major, SimpleITK order
    stored_axis: tuple[int, int, int]
    flipped: tuple[bool, bool, bool]

    # ------------------------------------------------------------ building
    @classmethod
    def of(cls, image: sitk.Image) -> Placement:
        if image.GetDimension() != 3:
            raise ValueError(f"Expected a 3D image, got {image.GetDimension()}D.")
        return cls.for_grid(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    @classmethod
    def for_grid(cls, size, spacing, origin, direction) -> Placement:
        matrix = np.asarray(direction, dtype=float).reshape(3, 3)
        # For each LPS world axis w (rows of D), the stored axis most parallel to it. The best of
        # the 6 permutations, not a per-axis argmax: two axes of a 45-degree oblique grid may tie.
        best = max(permutations(range(3)), key=lambda p: sum(abs(matrix[w, p[w]]) for w in range(3)))
        stored_axis, flipped = [], []
        for a in range(3):  # display axis a shows world axis 2 - a (z, y, x)
            w = 2 - a
            stored_axis.append(best[w])
            flipped.append(bool(matrix[w, best[w]] < 0))
        return cls(
            tuple(int(n) for n in size),  # type: ignore[arg-type]
            tuple(float(s) for s in spacing),  # type: ignore[arg-type]
            tuple(float(o) for o in origin),  # type: ignore[arg-type]
            tuple(float(d) for d in np.asarray(direction, dtype=float).ravel()),
            tuple(stored_axis),  # type: ignore[arg-type]
            tuple(flipped),  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------ geometry
    @property
    def display_shape(self) -> tuple[int, int, int]:
        return tuple(self.size[i] for i in self.stored_axis)  # type: ignore[return-value]

    @property
    def _array_axes(self) -> tuple[int, int, int]:
        # GetArrayFromImage is (z, y, x): stored index axis i is numpy axis 2 - i.
        return tuple(2 - i for i in self.stored_axis)  # type: ignore[return-value]

    def display_to_stored_index(self, display_index) -> np.ndarray:
        """(..., 3) display (a0, a1, a2) indices -> stored (i, j, k) indices (exact, integer-valued)."""
        d = np.asarray(display_index, dtype=float)
        out = np.empty_like(d)
        for a, (axis, flip) in enumerate(zip(self.stored_axis, self.flipped, strict=True)):
            out[..., axis] = (self.size[axis] - 1 - d[..., a]) if flip else d[..., a]
        return out

    def stored_to_display_index(self, stored_index) -> np.ndarray:
        s = np.asarray(stored_index, dtype=float)
        out = np.empty_like(s)
        for a, (axis, flip) in enumerate(zip(self.stored_axis, self.flipped, strict=True)):
            out[..., a] = (self.size[axis] - 1 - s[..., axis]) if flip else s[..., axis]
        return out

    @property
    def linear(self) -> np.ndarray:
        """3x3: display index step -> world (z, y, x) mm step; equals rotate @ diag(scale)."""
        d = np.asarray(self.direction).reshape(3, 3)
        columns = []
        for axis, flip in zip(self.stored_axis, self.flipped, strict=True):
            step = d[:, axis] * self.spacing[axis] * (-1.0 if flip else 1.0)  # LPS (x, y, z)
            columns.append(step[::-1])  # world (z, y, x)
        return np.column_stack(columns)

    @property
    def scale(self) -> tuple[float, float, float]:
        return tuple(self.spacing[i] for i in self.stored_axis)  # type: ignore[return-value]

    @property
    def translate(self) -> tuple[float, float, float]:
        """World (z, y, x) mm of display voxel (0, 0, 0)."""
        corner = self.display_to_stored_index(np.zeros(3))
        d = np.asarray(self.direction).reshape(3, 3)
        world = np.asarray(self.origin) + d @ (np.asarray(self.spacing) * corner)
        return tuple(float(v) for v in world[::-1])  # type: ignore[return-value]

    @property
    def rotate(self) -> np.ndarray | None:
        """The oblique remainder (3x3, world z, y, x order), or None for an axis-aligned grid."""
        rotation = self.linear / np.asarray(self.scale)
        return None if np.allclose(rotation, np.eye(3), atol=ROTATION_TOLERANCE) else rotation

    @property
    def affine(self) -> np.ndarray:
        """4x4 homogeneous display index -> world (z, y, x) mm (napari's `data_to_world`)."""
        out = np.eye(4)
        out[:3, :3] = self.linear
        out[:3, 3] = self.translate
        return out

    def display_to_world(self, display_index) -> np.ndarray:
        """(..., 3) display indices -> world (z, y, x) LPS mm."""
        return np.asarray(display_index, dtype=float) @ self.linear.T + np.asarray(self.translate)

    def world_to_display(self, world_zyx) -> np.ndarray:
        """(..., 3) world (z, y, x) mm -> continuous display indices (inverse of display_to_world)."""
        offset = np.asarray(world_zyx, dtype=float) - np.asarray(self.translate)
        return offset @ np.linalg.inv(self.linear).T

    # -------------------------------------------------------------- voxels
    def to_display(self, image: sitk.Image | np.ndarray) -> np.ndarray:
        """The stored voxels as a display (z, y, x) array, no resampling (a view of a numpy input).

        An image is copied out first: a view of SimpleITK's buffer dies with a temporary image."""
        array = sitk.GetArrayFromImage(image) if isinstance(image, sitk.Image) else np.asarray(image)
        expected = tuple(reversed(self.size))
        if array.shape != expected:
            raise ValueError(f"Array shape {array.shape} is not the stored grid's {expected}.")
        out = np.transpose(array, self._array_axes)
        flips = tuple(a for a, f in enumerate(self.flipped) if f)
        return np.flip(out, flips) if flips else out

    def to_stored_array(self, display: np.ndarray) -> np.ndarray:
        """A display array back in stored (z, y, x) numpy order (a contiguous copy)."""
        display = np.asarray(display)
        if display.shape != self.display_shape:
            raise ValueError(f"Display shape {display.shape} is not this placement's {self.display_shape}.")
        flips = tuple(a for a, f in enumerate(self.flipped) if f)
        data = np.flip(display, flips) if flips else display
        return np.ascontiguousarray(np.transpose(data, np.argsort(self._array_axes)))

    def to_stored(self, display: np.ndarray) -> sitk.Image:
        """A display array (e.g. edited labels) as an image on the stored grid, voxel for voxel."""
        image = sitk.GetImageFromArray(self.to_stored_array(display))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

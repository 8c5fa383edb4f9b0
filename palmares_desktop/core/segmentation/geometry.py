"""Voxel grids and the check that a mask sits on exactly the grid of its image.

pyradiomics (and every number we store) assumes mask voxel (i, j, k) covers the same patch of the
patient as image voxel (i, j, k). A mask from another tool may be on another grid (resampled,
cropped, flipped, another series): we refuse it in words rather than resample it silently.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.errors import PalmaresError


class SegmentationError(PalmaresError):
    """A label map that cannot become a segmentation; the message is a plain sentence."""


class GeometryMismatchError(SegmentationError):
    """The mask's voxel grid is not the image's."""


#: Grids match when no voxel centre moves by more than this fraction of the smallest voxel side.
TOLERANCE_VOXELS = 0.1


@dataclass(frozen=True)
class Grid:
    """Size, spacing, origin and direction of a voxel grid (SimpleITK's x, y, z order, mm)."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image | Grid) -> Grid:
        if isinstance(image, Grid):
            return image
        return cls(
            tuple(image.GetSize()),
            tuple(image.GetSpacing()),
            tuple(image.GetOrigin()),
            tuple(image.GetDirection()),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Grid:
        """The grid of an image file, reading only its header."""
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return cls(
            tuple(reader.GetSize()),
            tuple(reader.GetSpacing()),
            tuple(reader.GetOrigin()),
            tuple(reader.GetDirection()),
        )

    @property
    def dimension(self) -> int:
        return len(self.size)

    @property
    def matrix(self) -> np.ndarray:
        """Direction cosines as a matrix whose columns are the i, j, k axes."""
        n = self.dimension
        return np.asarray(self.direction, dtype=float).reshape(n, n)

    def to_physical(self, index: np.ndarray) -> np.ndarray:
        """Physical points (mm) of continuous indices; `index` has shape (..., dimension)."""
        scaled = np.asarray(index, dtype=float) * np.asarray(self.spacing)
        return scaled @ self.matrix.T + np.asarray(self.origin)

    def to_index(self, point: np.ndarray) -> np.ndarray:
        """Continuous indices of physical points (mm)."""
        offset = np.asarray(point, dtype=float) - np.asarray(self.origin)
        return (offset @ np.linalg.inv(self.matrix).T) / np.asarray(self.spacing)

    def corners(self) -> np.ndarray:
        """Index coordinates of the grid's corner voxel centres."""
        return np.array(list(itertools.product(*[(0, max(s - 1, 0)) for s in self.size])), dtype=float)

    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def describe(self) -> str:
        """E.g. '512x512x100 at 0.9766x0.9766x3 mm'."""
        size = "x".join(str(s) for s in self.size)
        spacing = "x".join(f"{s:.4g}" for s in self.spacing)
        return f"{size} at {spacing} mm"

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Give `image` (same size) exactly this grid's geometry."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def grid_mismatch(
    mask: sitk.Image | Grid, image: sitk.Image | Grid, tolerance_voxels: float = TOLERANCE_VOXELS
) -> list[str]:
    """Ways in which the two grids differ beyond the tolerance, as phrases (empty when they match)."""
    m, i = Grid.of(mask), Grid.of(image)
    if m.dimension != i.dimension:
        return [f"it is {m.dimension}-D and the image {i.dimension}-D"]
    tolerance_mm = tolerance_voxels * min(i.spacing)
    problems = []
    origin_shift = float(np.linalg.norm(np.subtract(m.origin, i.origin)))
    if origin_shift > tolerance_mm:
        problems.append(f"origin differs by {origin_shift:.3g} mm")
    if np.max(np.abs(np.subtract(m.direction, i.direction))) > 1e-3:
        problems.append("orientation differs")
    if m.size != i.size:
        problems.append("the number of voxels differs")
    elif not problems:
        # Same size and origin: a small spacing error still makes far voxels drift apart.
        drift = np.linalg.norm(m.to_physical(m.corners()) - i.to_physical(i.corners()), axis=1).max()
        if drift > tolerance_mm:
            problems.append(f"voxel spacing differs, so the grids drift apart by up to {drift:.3g} mm")
    return problems


def check_geometry(
    mask: sitk.Image | Grid,
    image: sitk.Image | Grid,
    image_name: str = "image",
    mask_name: str = "mask",
    tolerance_voxels: float = TOLERANCE_VOXELS,
) -> None:
    """Refuse, in words, a mask whose grid is not the image's (within a tenth of a voxel).

    Raises GeometryMismatchError, e.g. "The mask does not fit the CT: the mask is 256x256x100 at
    1.953x1.953x3 mm, the CT is 512x512x100 at 0.9766x0.9766x3 mm; origin differs by 12 mm."
    """
    problems = grid_mismatch(mask, image, tolerance_voxels)
    if problems:
        m, i = Grid.of(mask), Grid.of(image)
        raise GeometryMismatchError(
            f"The {mask_name} does not fit the {image_name}: the {mask_name} is {m.describe()}, "
            f"the {image_name} is {i.describe()}; {'; '.join(problems)}. "
            f"A {mask_name} must be drawn on this {image_name}'s own voxel grid."
        )

"""Slice geometry of one stack: sort along the normal, derive spacing, and say in words what is wrong.

DOMAIN.md §5: slices are ordered by their position projected on the slice normal
n = row cosines × column cosines (never by InstanceNumber or SliceLocation); the slice spacing comes
from the differences of those projections. A stack is *usable* only when it can be represented
exactly as a regular SimpleITK grid. Our policy, chosen for quantitative work (radiomics, SUV):

* steps that differ from the regular step by more than 1% (rtol 0.01) make the stack unusable:
  a gap that is a whole multiple of the step is reported as missing slices, anything else as
  irregular spacing; building a regular grid anyway would silently misplace voxels;
* two different images at one position (duplicates), gantry tilt, a sheared stack, or slices
  without ImagePositionPatient / ImageOrientationPatient / PixelSpacing make it unusable too;
* a single slice is usable (a one-slice volume) but gets a note, since its z spacing is only the
  slice thickness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from palmares_desktop.core.dicom.headers import FrameInfo

SPACING_RTOL = 0.01  # relative tolerance on the slice step (DOMAIN.md §5)
SHEAR_TOLERANCE = 0.05  # sideways drift per slice allowed, as a fraction of the in-plane pixel size
TILT_TOLERANCE_DEG = 0.01


@dataclass
class StackGeometry:
    frames: list[FrameInfo]  # sorted along the slice normal when positions are known
    spacing: tuple[float, float, float] | None = None  # (x, y, z) mm, SimpleITK order
    origin: tuple[float, float, float] | None = None
    direction: tuple[float, ...] | None = None  # 9 values, row-major, SimpleITK convention
    problems: list[str] = field(default_factory=list)
    usable: bool = True

    def fail(self, message: str) -> None:
        self.problems.append(message)
        self.usable = False


def assess_stack(frames: list[FrameInfo]) -> StackGeometry:
    """Sort the frames of one stack along its normal and check that they form a regular volume."""
    geo = StackGeometry(frames=list(frames))
    n = len(frames)
    placed = [f for f in frames if f.position is not None and f.orientation is not None]
    if len(placed) < n:
        geo.fail(
            f"{n - len(placed)} of {n} slices have no ImagePositionPatient or ImageOrientationPatient, "
            "so they cannot be placed in space."
        )
        geo.frames.sort(key=lambda f: (f.header.instance_number or 0, f.frame_index or 0))
        return geo

    orientation = np.array(frames[0].orientation, dtype=float)
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        geo.fail("ImageOrientationPatient is not a pair of perpendicular unit vectors.")
        return geo
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    positions = np.array([f.position for f in frames], dtype=float)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    geo.frames = [frames[i] for i in order]
    positions, along = positions[order], along[order]
    geo.origin = tuple(float(v) for v in positions[0])
    geo.direction = tuple(float(v) for v in np.column_stack([row, col, normal]).ravel())

    pixel_spacing = frames[0].pixel_spacing
    if pixel_spacing is None or min(pixel_spacing) <= 0:
        geo.fail("PixelSpacing is missing or not positive, so voxel sizes are unknown.")
        return geo

    tilts = {round(f.header.gantry_tilt, 3) for f in frames if abs(f.header.gantry_tilt) > TILT_TOLERANCE_DEG}
    if tilts:
        geo.fail(
            f"Gantry/detector tilt of {', '.join(f'{t:g}' for t in sorted(tilts))} degrees (0018,1120): "
            "the slices are not perpendicular to the table, so a regular volume would be sheared."
        )

    if n == 1:
        dz = frames[0].slice_thickness or 1.0
        geo.problems.append(
            f"Only one slice: the volume is one voxel deep and its z size ({dz:g} mm) is the slice thickness."
        )
    else:
        dz = _check_steps(geo, np.diff(along))
        _check_shear(geo, np.diff(positions, axis=0), normal, min(pixel_spacing))
    geo.spacing = (float(pixel_spacing[1]), float(pixel_spacing[0]), float(dz))
    return geo


def _check_steps(geo: StackGeometry, steps: np.ndarray) -> float:
    """Report duplicates, gaps and irregular steps; return the z spacing to use."""
    moving = steps[steps > 1e-3]
    if moving.size == 0:
        geo.fail(f"All {len(steps) + 1} slices are at the same position; they do not form a volume.")
        return 1.0
    nominal = float(np.median(moving))
    duplicate = steps <= SPACING_RTOL * nominal
    if duplicate.any():
        where = geo.frames[int(np.argmax(duplicate))].position
        geo.fail(
            f"{int(duplicate.sum())} slice(s) share a position with another slice (first at "
            f"{_fmt_point(where)} mm); a volume needs exactly one slice per position."
        )
    regular = steps[~duplicate]
    ratio = regular / nominal
    multiple = np.rint(ratio)
    off_step = np.abs(ratio - 1) > SPACING_RTOL
    is_gap = off_step & (multiple >= 2) & (np.abs(ratio - multiple) <= SPACING_RTOL * multiple)
    is_irregular = off_step & ~is_gap
    if is_gap.any():
        missing = int((multiple[is_gap] - 1).sum())
        first = int(np.flatnonzero(~duplicate)[np.argmax(is_gap)])
        a, b = geo.frames[first].position, geo.frames[first + 1].position
        geo.fail(
            f"{int(is_gap.sum())} gap(s) in the stack, about {missing} slice(s) missing: e.g. "
            f"{steps[first]:.2f} mm between the slices at {_fmt_point(a)} and {_fmt_point(b)} mm, "
            f"where the regular step is {nominal:.2f} mm."
        )
    if is_irregular.any():
        bad = regular[is_irregular]
        geo.fail(
            f"Slice spacing is irregular: {int(is_irregular.sum())} step(s) differ from the regular "
            f"{nominal:.3f} mm by more than {SPACING_RTOL:.0%} (they range from {bad.min():.3f} to "
            f"{bad.max():.3f} mm)."
        )
    if geo.usable:
        # Regular stack: the mean step is the best estimate of the spacing.
        return float(steps.sum() / len(steps))
    return nominal


def _check_shear(geo: StackGeometry, deltas: np.ndarray, normal: np.ndarray, pixel: float) -> None:
    sideways = deltas - np.outer(deltas @ normal, normal)
    drift = float(np.linalg.norm(sideways, axis=1).max())
    if drift > SHEAR_TOLERANCE * pixel:
        geo.fail(
            f"Slice positions drift sideways by up to {drift:.2f} mm from one slice to the next: the "
            "stack is sheared (typical of gantry tilt), so a regular volume would misplace voxels."
        )


def _fmt_point(point) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in point) + ")"

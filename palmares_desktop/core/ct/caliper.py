"""The reader's manual caliper: lines drawn on a slice, measured in mm, and the RECIST pair.

Points are world (z, y, x) mm as the viewer places them (the stored grid's spacing, rotated for an
oblique grid: a rotation keeps lengths, so the length is the one the patient has). A reader measures
a lesion as RECIST 1.1 asks with two lines on one slice: the longest diameter and the longest
perpendicular to it. `reading` names the pair when two lines on a slice cross at 90 ± 10 degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERPENDICULAR_TOLERANCE_DEG = 10.0  # a hand-drawn short axis is rarely exactly at 90 degrees
SAME_SLICE_MM = 0.01


@dataclass(frozen=True)
class CaliperLine:
    start_zyx: tuple[float, float, float]
    end_zyx: tuple[float, float, float]

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.end_zyx, self.start_zyx)))

    @property
    def direction(self) -> np.ndarray:
        delta = np.subtract(self.end_zyx, self.start_zyx)
        norm = np.linalg.norm(delta)
        return delta / norm if norm > 0 else delta


@dataclass(frozen=True)
class CaliperReading:
    """What the readout shows: every line's length and, when two lines on the slice are
    perpendicular, the long and short axes."""

    lengths_mm: tuple[float, ...]
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    angle_deg: float | None = None

    def sentence(self) -> str:
        if not self.lengths_mm:
            return "Caliper: drag a line across the lesion on a slice; a second line across it gives the short axis."
        if self.long_axis_mm is not None:
            return (
                f"Caliper: long axis {self.long_axis_mm:.1f} mm × short axis {self.short_axis_mm:.1f} mm "
                f"(lines at {self.angle_deg:.0f}°)."
            )
        lines = ", ".join(f"{length:.1f} mm" for length in self.lengths_mm)
        return f"Caliper: {lines}." + (
            " Lines that cross at about 90° on one slice read as long × short axis."
            if len(self.lengths_mm) > 1
            else ""
        )


def line_from_points(points_zyx: Sequence[Sequence[float]]) -> CaliperLine:
    """A napari line shape's two vertices (world z, y, x)."""
    points = np.asarray(points_zyx, dtype=float)
    if points.shape != (2, 3) or not np.isfinite(points).all():
        raise ValueError("a caliper line has two finite (z, y, x) end points")
    return CaliperLine(tuple(points[0]), tuple(points[1]))


def angle_between(a: CaliperLine, b: CaliperLine) -> float:
    """The angle between two lines, 0-90 degrees (a line has no direction)."""
    cosine = abs(float(np.dot(a.direction, b.direction)))
    return float(np.degrees(np.arccos(min(1.0, cosine))))


def reading(lines: Sequence[CaliperLine]) -> CaliperReading:
    """Lengths of `lines`, with the long/short pair taken from the last two lines drawn when they
    lie on one slice and cross at about 90 degrees."""
    lengths = tuple(line.length_mm for line in lines)
    if len(lines) >= 2:
        a, b = lines[-2], lines[-1]
        zs = (a.start_zyx[0], a.end_zyx[0], b.start_zyx[0], b.end_zyx[0])
        same_slice = max(zs) - min(zs) <= SAME_SLICE_MM
        angle = angle_between(a, b)
        if same_slice and abs(90.0 - angle) <= PERPENDICULAR_TOLERANCE_DEG:
            long_line, short_line = sorted((a, b), key=lambda line: line.length_mm, reverse=True)
            return CaliperReading(lengths, long_line.length_mm, short_line.length_mm, angle)
    return CaliperReading(lengths)

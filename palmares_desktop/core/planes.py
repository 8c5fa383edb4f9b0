"""The reading room's companion views: coronal and sagittal planes through the cursor, a PET MIP, and
the values under the cursor, all in world mm (numbers and pixels only, no Qt).

Each view is an axis-aligned plane of the patient's LPS world, sampled nearest-neighbour from the
display arrays (`core.placement`), so CT and PET on different grids line up exactly where napari puts
them. Pixels are square (the reference volume's finest spacing) so anatomy keeps its proportions.
Radiological convention throughout: the patient's right on the screen's left, superior at the top,
anterior on the sagittal's left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from palmares_desktop.core.pet.display import FUSION_FADE_IN
from palmares_desktop.core.placement import Placement


@dataclass(frozen=True)
class PlaneKind:
    name: str
    fixed_axis: int  # world axis (0 z, 1 y, 2 x) held at the cursor
    row_axis: int  # world axis down the rows
    col_axis: int  # world axis along the columns
    rows_descend: bool  # True: row 0 is the highest world value (superior at the top)
    labels: tuple[str, str, str, str]  # orientation letters: top, bottom, left, right


PLANES = {
    "axial": PlaneKind("axial", 0, 1, 2, False, ("A", "P", "R", "L")),
    "coronal": PlaneKind("coronal", 1, 0, 2, True, ("S", "I", "R", "L")),
    "sagittal": PlaneKind("sagittal", 2, 0, 1, True, ("S", "I", "A", "P")),
}


@dataclass(frozen=True)
class Volume:
    """A display (z, y, x) array and the placement that puts it in world mm."""

    data: np.ndarray
    placement: Placement

    def bounds(self) -> np.ndarray:
        """(2, 3) world (z, y, x) minimum and maximum over the voxel centres."""
        shape = np.asarray(self.data.shape) - 1
        corners = np.array([[a, b, c] for a in (0, shape[0]) for b in (0, shape[1]) for c in (0, shape[2])])
        world = self.placement.display_to_world(corners)
        return np.stack([world.min(axis=0), world.max(axis=0)])

    def indices(self, world_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nearest display indices (..., 3), inside mask (...)) of world points (..., 3)."""
        index = np.rint(self.placement.world_to_display(world_zyx)).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.asarray(self.data.shape)), axis=-1)
        return np.where(inside[..., None], index, 0), inside

    def centre(self) -> tuple[float, float, float]:
        """World (z, y, x) centre of the volume (where a view's cursor starts)."""
        return tuple(float(v) for v in self.bounds().mean(axis=0))  # type: ignore[return-value]

    def spacing(self, world_axis: int) -> float:
        """Voxel spacing (mm) along a world axis (0 z, 1 y, 2 x): one plane step there."""
        return float(np.abs(self.placement.linear[world_axis]).max())

    def value_at(self, world_zyx) -> float | None:
        """The voxel value at a world point (nearest voxel), None outside the volume."""
        index, inside = self.indices(np.asarray(world_zyx, dtype=float))
        return float(self.data[tuple(index)]) if bool(inside) else None


@dataclass(frozen=True)
class PlaneGrid:
    """World positions of a view's pixels: `rows` x `cols` square pixels of `pixel_mm`."""

    kind: PlaneKind
    row_start: float  # world mm of row 0 (its axis: kind.row_axis)
    col_start: float
    pixel_mm: float
    rows: int
    cols: int

    @classmethod
    def covering(cls, kind: PlaneKind, volume: Volume) -> PlaneGrid:
        """The plane over the whole of `volume`, at its finest in-plane spacing."""
        low, high = volume.bounds()
        spacing = np.abs(np.asarray(volume.placement.scale))
        pixel = float(min(spacing[kind.row_axis], spacing[kind.col_axis]))
        rows = int(np.floor((high[kind.row_axis] - low[kind.row_axis]) / pixel)) + 1
        cols = int(np.floor((high[kind.col_axis] - low[kind.col_axis]) / pixel)) + 1
        row_start = float(high[kind.row_axis] if kind.rows_descend else low[kind.row_axis])
        return cls(kind, row_start, float(low[kind.col_axis]), pixel, rows, cols)

    def _row_world(self, row) -> np.ndarray:
        step = -self.pixel_mm if self.kind.rows_descend else self.pixel_mm
        return self.row_start + step * np.asarray(row, dtype=float)

    def world(self, fixed_mm: float) -> np.ndarray:
        """(rows, cols, 3) world (z, y, x) of every pixel centre, the fixed axis at `fixed_mm`."""
        out = np.empty((self.rows, self.cols, 3))
        out[..., self.kind.fixed_axis] = fixed_mm
        out[..., self.kind.row_axis] = self._row_world(np.arange(self.rows))[:, None]
        out[..., self.kind.col_axis] = (self.col_start + self.pixel_mm * np.arange(self.cols))[None, :]
        return out

    def pixel_of(self, world_zyx) -> tuple[float, float]:
        """(row, col) of a world point, continuous (for a crosshair)."""
        w = np.asarray(world_zyx, dtype=float)
        row = (w[self.kind.row_axis] - self.row_start) / self.pixel_mm
        return (-row if self.kind.rows_descend else row), (
            w[self.kind.col_axis] - self.col_start
        ) / self.pixel_mm

    def world_of(self, row: float, col: float, cursor_zyx) -> np.ndarray:
        """The world point under pixel (row, col); the fixed axis keeps the cursor's value."""
        out = np.asarray(cursor_zyx, dtype=float).copy()
        out[self.kind.row_axis] = float(self._row_world(row))
        out[self.kind.col_axis] = self.col_start + self.pixel_mm * float(col)
        return out


@dataclass(frozen=True)
class PlaneIndices:
    """Which voxel of a volume each pixel of a plane shows: worked out once and shared by every
    volume on the same grid (a lesion's masks all are on their series' grid)."""

    flat: np.ndarray  # (rows, cols) index into data.ravel(); 0 where outside
    inside: np.ndarray  # (rows, cols) bool

    @classmethod
    def of(cls, volume: Volume, grid: PlaneGrid, fixed_mm: float) -> PlaneIndices:
        index, inside = volume.indices(grid.world(fixed_mm))
        return cls(np.ravel_multi_index(np.moveaxis(index, -1, 0), volume.data.shape), inside)

    def take(self, data: np.ndarray, outside: float = np.nan) -> np.ndarray:
        values = data.ravel()[self.flat].astype(np.float32)
        values[~self.inside] = outside
        return values


def sample(
    volume: Volume,
    grid: PlaneGrid,
    fixed_mm: float,
    outside: float = np.nan,
    indices: PlaneIndices | None = None,
) -> np.ndarray:
    """The plane of `volume` through `fixed_mm` on `grid` (float; `outside` where the volume is not);
    `indices` from `PlaneIndices.of` on an equal grid saves working them out again."""
    return (indices or PlaneIndices.of(volume, grid, fixed_mm)).take(volume.data, outside)


def projection(volume: Volume, grid: PlaneGrid) -> np.ndarray:
    """Maximum-intensity projection of `volume` along the grid's fixed axis (e.g. a coronal PET MIP).

    The maximum runs along the display axis closest to that world axis; an oblique volume's
    projection is therefore along its own axis, which is within a few degrees of the world's."""
    along = int(np.argmax(np.abs(volume.placement.linear[grid.kind.fixed_axis])))
    projected = volume.data.max(axis=along)
    keep = [a for a in range(3) if a != along]
    # The other two indices, taken through the volume's middle (an oblique volume's projection
    # then lines up with its centre plane).
    middle = volume.centre()[grid.kind.fixed_axis]
    index_other = np.rint(volume.placement.world_to_display(grid.world(middle))).astype(np.int64)[..., keep]
    shape = np.asarray(projected.shape)
    inside = np.all((index_other >= 0) & (index_other < shape), axis=-1)
    index_other = np.where(inside[..., None], index_other, 0)
    values = projected[index_other[..., 0], index_other[..., 1]].astype(np.float32)
    values[~inside] = 0.0
    return values


def grey(values: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """CT window: (rows, cols) HU -> (rows, cols, 3) float 0..1; outside the volume black."""
    low, high = limits
    out = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    out = np.where(np.isnan(values), 0.0, out)
    return np.repeat(out[..., None], 3, axis=-1)


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a 2D boolean mask (inside pixels with an outside 4-neighbour)."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def mip_grey(values: np.ndarray, suv_max: float) -> np.ndarray:
    """PET MIP as nuclear physicians read it: inverted grey, white background, black = SUV max."""
    level = 1.0 - np.clip(values / suv_max if suv_max > 0 else 0.0, 0.0, 1.0)
    return np.repeat(level[..., None], 3, axis=-1)


def to_bytes(rgb: np.ndarray) -> np.ndarray:
    """float 0..1 RGB -> contiguous uint8 (what a screen image takes)."""
    return np.ascontiguousarray(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8))


def colour_bar_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to `top`, ending at `top` itself (the display maximum)."""
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    values = [round(float(v), 6) for v in np.arange(0.0, top + step * 1e-6, step)]
    if top - values[-1] > 1e-6:
        if top - values[-1] < 0.4 * step:
            values.pop()  # a tick this close under the top would print over its label
        values.append(round(float(top), 6))
    return values


def fade_in_suv(suv_max: float) -> float:
    """Below this SUV the fused colour is fading in (the colour bar marks it)."""
    return FUSION_FADE_IN * suv_max


def readout(world_zyx, hu: float | None, pet: float | None, pet_unit: str = "SUVbw") -> str:
    """The status line under the mouse: world position (x, y, z as DICOM writes them) and values."""
    z, y, x = (float(v) for v in world_zyx)
    parts = [f"x {x:.1f}  y {y:.1f}  z {z:.1f} mm (LPS)"]
    if hu is not None:
        parts.append(f"HU {hu:.0f}")
    if pet is not None:
        parts.append(f"{pet_unit} {pet:.2f}" if pet_unit.startswith("SU") else f"PET {pet:.4g} {pet_unit}")
    if hu is None and pet is None:
        parts.append("outside the images")
    return "    ".join(parts)

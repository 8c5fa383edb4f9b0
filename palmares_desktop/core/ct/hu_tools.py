"""CT segmentation by Hounsfield units: a threshold inside a region the reader places, and region
growing from a seed.

Arrays are numpy (z, y, x) in HU; spacings are given in the same (z, y, x) order (the reverse of
SimpleITK's GetSpacing()); points are patient coordinates in mm (DICOM LPS). Kept voxels must be
connected to the seed with 26-connectivity (faces, edges and corners), as in the PET threshold
(core/pet/threshold.py).

CT noise (10-20 HU per voxel) is larger than the contrast of many soft-tissue lesions (a liver
metastasis may differ from the liver by 20 HU), so a voxel-wise threshold there leaks through the
organ. Both tools can first smooth the HU with a Gaussian of `smooth_mm` (standard deviation in mm,
per axis by the spacing); the mask is then that of the smoothed image, and every HU statistic
reported is still of the original HU. `smooth_mm=0` (the default) thresholds the HU as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.segmentation.geometry import Grid

CONNECTIVITY = "26 (faces, edges and corners)"
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
_TRUNCATE = 4.0  # Gaussian support in standard deviations (scipy.ndimage's default)
GROW_RULE = (
    "voxels connected to the seed whose HU lie within the tolerance of the mean HU of the seed's "
    "3x3x3 neighbourhood (clipped at the scan's edge), inside a sphere of the maximum radius"
)


class CtToolError(PalmaresError):
    """A CT tool cannot run as asked; the message says why in one sentence."""


def _mm(point) -> str:
    return ", ".join(f"{v:.1f}" for v in point)


@dataclass
class CtVolume:
    """A CT in HU on its grid."""

    hu: np.ndarray  # (z, y, x)
    grid: Grid

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in self.grid.spacing[::-1])  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        return self.grid.voxel_volume_mm3() / 1000.0

    def index_of(self, point_mm, what: str = "The point") -> tuple[int, int, int]:
        """(z, y, x) index of the voxel containing `point_mm`, refused when outside the CT."""
        ijk = np.rint(self.grid.to_index(np.asarray(point_mm, dtype=float))).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= np.asarray(self.grid.size)):
            lo = self.grid.to_physical(np.zeros(3))
            hi = self.grid.to_physical(np.asarray(self.grid.size, dtype=float) - 1)
            raise CtToolError(
                f"{what} ({_mm(point_mm)} mm) lies outside the CT, which spans {_mm(lo)} to {_mm(hi)} mm."
            )
        return int(ijk[2]), int(ijk[1]), int(ijk[0])

    def point_of(self, zyx) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.grid.to_physical(np.asarray(zyx, dtype=float)[::-1]))  # type: ignore[return-value]


# ----------------------------------------------------------------------------- regions
@dataclass(frozen=True)
class RegionVoxels:
    """A region on a grid: the index box (z, y, x slices) and which voxels of the box are in it."""

    box: tuple[slice, slice, slice]
    inside: np.ndarray  # bool, the box's shape
    words: str = "in the region"  # "around X, Y, Z mm (a 60 mm box)", for the messages

    @classmethod
    def of_box(cls, box: tuple[slice, ...], shape: tuple[int, ...]) -> RegionVoxels:
        box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(box, shape, strict=True))
        return cls(box, np.ones(tuple(b.stop - b.start for b in box), dtype=bool))  # type: ignore[arg-type]

    def local(self, index) -> tuple[int, int, int] | None:
        """`index` (full grid) relative to the box, None when outside the region."""
        local = tuple(int(i) - b.start for i, b in zip(index, self.box, strict=True))
        if any(v < 0 or v >= n for v, n in zip(local, self.inside.shape, strict=True)):
            return None
        return local if self.inside[local] else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Region:
    """Where a threshold applies: a box of `size_mm` edge or a sphere of `size_mm` diameter, centred
    on `centre_mm`, axis-aligned with the CT grid. A voxel is in the region when its centre is."""

    centre_mm: tuple[float, float, float]
    size_mm: float = 60.0
    shape: str = "box"  # box | sphere

    def voxels(self, ct: CtVolume) -> RegionVoxels:
        if self.shape not in ("box", "sphere"):
            raise CtToolError(f"The region shape {self.shape!r} is not box or sphere.")
        if not self.size_mm > 0:
            raise CtToolError(f"The region size ({self.size_mm} mm) must be positive.")
        ct.index_of(self.centre_mm, "The region centre")
        half = self.size_mm / 2.0
        centre = ct.grid.to_index(np.asarray(self.centre_mm, dtype=float))[::-1]
        span = half / np.asarray(ct.spacing_zyx)
        lo = np.maximum(np.ceil(centre - span - 1e-6).astype(int), 0)
        hi = np.minimum(np.floor(centre + span + 1e-6).astype(int) + 1, ct.hu.shape)
        box = tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi, strict=True))
        if self.shape == "box":
            inside = np.ones(tuple(b.stop - b.start for b in box), dtype=bool)
        else:
            zz, yy, xx = np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij")
            points = ct.grid.to_physical(np.stack([xx, yy, zz], axis=-1).astype(float))
            inside = ((points - np.asarray(self.centre_mm)) ** 2).sum(axis=-1) <= half**2 + 1e-6
        words = f"around {_mm(self.centre_mm)} mm (a {self.size_mm:g} mm {self.shape})"
        return RegionVoxels(box, inside, words)  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return {"centre_mm": list(self.centre_mm), "size_mm": self.size_mm, "shape": self.shape}


# ----------------------------------------------------------------------------- smoothing
def _values(ct_hu: np.ndarray, box: tuple[slice, ...], spacing_zyx, smooth_mm: float) -> np.ndarray:
    """The HU of `box`, smoothed by a Gaussian of `smooth_mm` (mm) when asked. Only the box and the
    kernel's reach around it are filtered, so the values equal those of smoothing the whole scan
    (scipy.ndimage.gaussian_filter, mode 'nearest' at the scan's edge)."""
    if not smooth_mm:
        return ct_hu[box]
    if smooth_mm < 0:
        raise CtToolError(f"The smoothing ({smooth_mm:g} mm) cannot be negative.")
    if spacing_zyx is None:
        raise CtToolError("Smoothing in mm needs the voxel spacing.")
    sigma = [smooth_mm / float(s) for s in spacing_zyx]
    reach = [int(_TRUNCATE * s + 0.5) for s in sigma]
    wide = tuple(
        slice(max(b.start - r, 0), min(b.stop + r, n))
        for b, r, n in zip(box, reach, ct_hu.shape, strict=True)
    )
    smoothed = ndimage.gaussian_filter(
        ct_hu[wide].astype(np.float32), sigma, mode="nearest", truncate=_TRUNCATE
    )
    inner = tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, wide, strict=True))
    return smoothed[inner]


def smooth_hu(ct_hu: np.ndarray, smooth_mm: float, spacing_zyx) -> np.ndarray:
    """The whole CT smoothed as the tools smooth it (float32), e.g. for a preview."""
    return _values(ct_hu, tuple(slice(0, n) for n in ct_hu.shape), spacing_zyx, smooth_mm)


# ----------------------------------------------------------------------------- results
@dataclass
class HuResult:
    """A CT tool's mask on the full grid, the box it was computed in, and the rule in numbers."""

    mask: np.ndarray  # bool, the CT's shape
    box: tuple[slice, ...]
    parameters: dict[str, Any] = field(default_factory=dict)


def hu_statistics(ct_hu: np.ndarray, mask: np.ndarray, voxel_ml: float) -> dict[str, float | int]:
    """Voxel count, volume (mL) and HU mean, SD, min and max of the original HU inside `mask`."""
    values = ct_hu[mask].astype(np.float64)
    if values.size == 0:
        return {"voxel_count": 0, "volume_ml": 0.0}
    return {
        "voxel_count": int(values.size),
        "volume_ml": float(values.size * voxel_ml),
        "hu_mean": float(values.mean()),
        "hu_sd": float(values.std()),
        "hu_min": float(values.min()),
        "hu_max": float(values.max()),
    }


def _full(component: np.ndarray, box: tuple[slice, ...], shape) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[box] = component
    return mask


def _touches_edge(component: np.ndarray, inside: np.ndarray) -> bool:
    edge = inside & ~ndimage.binary_erosion(inside, border_value=0)
    return bool((component & edge).any())


# ----------------------------------------------------------------------------- threshold
def hu_threshold(
    ct_hu: np.ndarray,
    lo: float,
    hi: float,
    region_box: RegionVoxels | tuple[slice, ...],
    seed_index=None,
    *,
    spacing_zyx=None,
    smooth_mm: float = 0.0,
) -> HuResult:
    """Voxels with lo <= HU <= hi inside the region, keeping the 26-connected component containing
    `seed_index` ((z, y, x) on the full grid), or the largest component when no seed is given (the
    first in scan order on a tie). `region_box` is a `RegionVoxels` (box or sphere, see `Region`) or
    a plain box of index slices. With `smooth_mm`, the HU are smoothed first (module doc)."""
    if not lo <= hi:
        raise CtToolError(f"The HU range {lo:g} to {hi:g} is empty: give the lower bound first.")
    region = (
        region_box if isinstance(region_box, RegionVoxels) else RegionVoxels.of_box(region_box, ct_hu.shape)
    )
    if not region.inside.any():
        raise CtToolError("The region holds no CT voxel; make it larger.")
    values = _values(ct_hu, region.box, spacing_zyx, smooth_mm)
    within = region.inside & (values >= lo) & (values <= hi)
    if not within.any():
        raise CtToolError(f"No voxel between {lo:g} and {hi:g} HU {region.words}.")
    labels, _ = ndimage.label(within, structure=_STRUCTURE)
    if seed_index is not None:
        seed = region.local(seed_index)
        if seed is None:
            raise CtToolError(f"The seed lies outside the region {region.words}.")
        if not within[seed]:
            what = "smoothed HU" if smooth_mm else "HU"
            raise CtToolError(
                f"The seed voxel has {values[seed]:.0f} {what}, outside {lo:g} to {hi:g} HU: click inside "
                "the lesion, or widen the range."
            )
        component = labels == labels[seed]
        seed_kind = "given voxel"
    else:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        component = labels == int(np.argmax(sizes))
        seed_kind = "largest component"
    parameters: dict[str, Any] = {
        "lower_hu": float(lo),
        "upper_hu": float(hi),
        "keep": seed_kind,
        "connectivity": CONNECTIVITY,
        "smooth_mm": float(smooth_mm),
        "touches_region_edge": _touches_edge(component, region.inside),
    }
    return HuResult(_full(component, region.box, ct_hu.shape), region.box, parameters)


# ----------------------------------------------------------------------------- region growing
def region_grow(
    ct_hu: np.ndarray,
    seed_index,
    tolerance_hu: float,
    max_radius_mm: float,
    spacing_zyx,
    *,
    smooth_mm: float = 0.0,
) -> HuResult:
    """The voxels connected (26) to `seed_index` ((z, y, x)) whose HU lie within ±`tolerance_hu`
    (inclusive) of the mean HU of the seed's 3x3x3 neighbourhood (clipped at the scan's edge), grown
    only inside the sphere of `max_radius_mm` around the seed voxel's centre, so it cannot leak
    through the whole body. This equals SimpleITK's ConnectedThreshold (full connectivity, bounds
    mean ± tolerance) on the image with the voxels outside the sphere excluded. With `smooth_mm`, the
    HU (neighbourhood mean included) are smoothed first (module doc)."""
    if not tolerance_hu >= 0:
        raise CtToolError(f"The tolerance ({tolerance_hu:g} HU) cannot be negative.")
    if not max_radius_mm > 0:
        raise CtToolError(f"The maximum radius ({max_radius_mm:g} mm) must be positive.")
    seed = tuple(int(v) for v in seed_index)
    if len(seed) != 3 or any(v < 0 or v >= n for v, n in zip(seed, ct_hu.shape, strict=True)):
        raise CtToolError(f"The seed voxel {seed} lies outside the CT of {ct_hu.shape} voxels (z, y, x).")
    spacing = np.asarray(spacing_zyx, dtype=float)
    near = tuple(slice(max(v - 1, 0), min(v + 2, n)) for v, n in zip(seed, ct_hu.shape, strict=True))
    mean = float(np.mean(_values(ct_hu, near, spacing, smooth_mm), dtype=np.float64))
    lower, upper = mean - tolerance_hu, mean + tolerance_hu

    reach = np.floor(max_radius_mm / spacing + 1e-9).astype(int)
    box = tuple(
        slice(int(max(v - r, 0)), int(min(v + r + 1, n)))
        for v, r, n in zip(seed, reach, ct_hu.shape, strict=True)
    )
    offsets = np.meshgrid(
        *[(np.arange(b.start, b.stop) - v) * s for b, v, s in zip(box, seed, spacing, strict=True)],
        indexing="ij",
        sparse=True,
    )
    inside = sum(o**2 for o in offsets) <= max_radius_mm**2 + 1e-6
    values = _values(ct_hu, box, spacing, smooth_mm)
    within = inside & (values >= lower) & (values <= upper)
    local = tuple(v - b.start for v, b in zip(seed, box, strict=True))
    if not within[local]:
        raise CtToolError(
            f"The seed voxel ({values[local]:.0f} HU) is more than {tolerance_hu:g} HU from the mean of its "
            f"neighbourhood ({mean:.0f} HU): raise the tolerance, smooth, or click elsewhere in the lesion."
        )
    labels, _ = ndimage.label(within, structure=_STRUCTURE)
    component = labels == labels[local]
    parameters: dict[str, Any] = {
        "rule": GROW_RULE,
        "seed_mean_hu": mean,
        "tolerance_hu": float(tolerance_hu),
        "lower_hu": lower,
        "upper_hu": upper,
        "max_radius_mm": float(max_radius_mm),
        "connectivity": CONNECTIVITY,
        "smooth_mm": float(smooth_mm),
        "touches_max_radius": _touches_edge(component, inside),  # or the scan's edge
    }
    return HuResult(_full(component, box, ct_hu.shape), box, parameters)

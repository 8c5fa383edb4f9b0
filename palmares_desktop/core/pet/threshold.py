"""PET threshold segmentation inside a region the reader places, and the PERCIST reference regions.

DOMAIN §2: the rules are 41 % or 50 % of the region's SUVmax (EANM), fixed SUV 2.5 or 4.0, and
PERCIST (1.5 × liver SULmean + 2 SD in a 3 cm liver sphere; blood-pool fallback 2.0 × mean + 2 SD).
Voxels at or above the threshold inside the region are kept when they are connected (26-connectivity:
faces, edges and corners) to the seed: the region's hottest voxel, or the voxel the reader clicked.

Arrays are numpy (z, y, x); points are patient coordinates in mm (DICOM LPS). Every number comes from
the one SUV image; SUL = SUV × `sul_ratio` (Janmahasatian lean body mass / body weight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.pet.metrics import PetLesionMetrics, lesion_metrics
from palmares_desktop.core.segmentation.geometry import Grid

RULES = ("41%", "50%", "suv2.5", "suv4.0", "percist")
RULE_WORDS = {
    "41%": "41 % of the region's SUVmax",
    "50%": "50 % of the region's SUVmax",
    "suv2.5": "fixed SUV 2.5",
    "suv4.0": "fixed SUV 4.0",
    "percist": "PERCIST",
}
CONNECTIVITY = "26 (faces, edges and corners)"
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
LIVER_RADIUS_MM = 15.0  # the PERCIST 3 cm liver sphere
# PERCIST blood pool: a 1 cm diameter, 2 cm long cylinder along the descending aorta (z axis).
BLOOD_POOL_RADIUS_MM, BLOOD_POOL_HALF_LENGTH_MM = 5.0, 10.0
MIN_REFERENCE_FRACTION = 0.8  # of the reference region that must lie inside the PET


class PetToolError(PalmaresError):
    """A PET tool cannot run as asked; the message says why in one sentence."""


def _mm(point) -> str:
    return ", ".join(f"{v:.1f}" for v in point)


@dataclass
class PetVolume:
    """An SUVbw volume on its grid, with what is needed to report SUL."""

    suv: np.ndarray  # (z, y, x) float
    grid: Grid
    sul_ratio: float | None = None  # Janmahasatian LBM / weight; None when height or sex is unknown
    normalisation: dict = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in self.grid.spacing)  # type: ignore[return-value]

    def index_of(self, point_mm, what: str = "The point") -> tuple[int, int, int]:
        """(z, y, x) index of the voxel containing `point_mm`, refused when outside the PET."""
        ijk = np.rint(self.grid.to_index(np.asarray(point_mm, dtype=float))).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= np.asarray(self.grid.size)):
            lo = self.grid.to_physical(np.zeros(3))
            hi = self.grid.to_physical(np.asarray(self.grid.size, dtype=float) - 1)
            raise PetToolError(
                f"{what} ({_mm(point_mm)} mm) lies outside the PET, which spans {_mm(lo)} to {_mm(hi)} mm."
            )
        return int(ijk[2]), int(ijk[1]), int(ijk[0])

    def point_of(self, zyx) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.grid.to_physical(np.asarray(zyx, dtype=float)[::-1]))  # type: ignore[return-value]

    def metrics(self, mask: np.ndarray, box: tuple[slice, ...] | None = None) -> PetLesionMetrics:
        """Lesion metrics of `mask` (full grid). With `box`, only that part of the grid is read: the
        box is widened by the peak sphere so SUVpeak sees the same neighbours as on the full image."""
        if box is None:
            return lesion_metrics(
                self.suv, mask, self.spacing, self.sul_ratio, self.grid.origin, self.grid.direction
            )
        pad = [int(np.ceil(10.0 / s)) for s in self.spacing[::-1]]  # > the 6.2 mm peak radius
        wide = tuple(
            slice(max(b.start - p, 0), min(b.stop + p, n))
            for b, p, n in zip(box, pad, self.suv.shape, strict=True)
        )
        origin = self.point_of([b.start for b in wide])
        return lesion_metrics(
            self.suv[wide], mask[wide], self.spacing, self.sul_ratio, origin, self.grid.direction
        )


# ----------------------------------------------------------------------------- regions
def _offsets_mm(pet: PetVolume, box: tuple[slice, ...], centre_mm) -> np.ndarray:
    """Physical offsets (z, y, x, 3) of the voxel centres of `box` from `centre_mm`."""
    zz, yy, xx = np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij")
    index = np.stack([xx, yy, zz], axis=-1).astype(float)
    return pet.grid.to_physical(index) - np.asarray(centre_mm, dtype=float)


def _box_around(pet: PetVolume, centre_mm, half_mm) -> tuple[slice, ...]:
    """Index box (z, y, x slices) holding every voxel centre within `half_mm` (per axis) of the point."""
    centre = pet.grid.to_index(np.asarray(centre_mm, dtype=float))[::-1]
    half = np.abs(np.asarray(half_mm, dtype=float)) / np.asarray(pet.spacing[::-1])
    lo = np.maximum(np.ceil(centre - half - 1e-6).astype(int), 0)
    hi = np.minimum(np.floor(centre + half + 1e-6).astype(int) + 1, pet.suv.shape)
    return tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi, strict=True))


@dataclass(frozen=True)
class Region:
    """Where the threshold applies: a box of `size_mm` edge or a sphere of `size_mm` diameter, centred
    on `centre_mm`, axis-aligned with the PET grid."""

    centre_mm: tuple[float, float, float]
    size_mm: float = 60.0
    shape: str = "box"  # box | sphere

    def voxels(self, pet: PetVolume) -> tuple[tuple[slice, ...], np.ndarray]:
        """The index box and the in-region voxels inside it."""
        if self.shape not in ("box", "sphere"):
            raise PetToolError(f"The region shape {self.shape!r} is not box or sphere.")
        if not self.size_mm > 0:
            raise PetToolError(f"The region size ({self.size_mm} mm) must be positive.")
        pet.index_of(self.centre_mm, "The region centre")
        half = self.size_mm / 2.0
        box = _box_around(pet, self.centre_mm, (half, half, half))
        if self.shape == "box":
            inside = np.ones(tuple(b.stop - b.start for b in box), dtype=bool)
        else:
            inside = (_offsets_mm(pet, box, self.centre_mm) ** 2).sum(axis=-1) <= half**2 + 1e-6
        return box, inside

    def to_dict(self) -> dict:
        return {"centre_mm": list(self.centre_mm), "size_mm": self.size_mm, "shape": self.shape}


@dataclass
class ReferenceRegion:
    """Uptake statistics of a PERCIST reference region (liver sphere or blood-pool cylinder)."""

    kind: str  # liver | blood pool
    centre_mm: tuple[float, float, float]
    voxel_count: int
    suv_mean: float
    suv_sd: float
    sul_mean: float | None
    sul_sd: float | None
    shape: str

    @property
    def words(self) -> str:
        if self.kind == "liver":
            return "PERCIST, liver reference (1.5 x SULmean + 2 SD)"
        return "PERCIST, blood-pool reference (2.0 x SULmean + 2 SD)"

    def percist_threshold_suv(self) -> float:
        """1.5 × mean + 2 SD (liver) or 2.0 × mean + 2 SD (blood pool). PERCIST states it in SUL; as
        SUL = SUV × one constant per subject, the same voxels pass whether computed in SUL or SUV."""
        factor = 1.5 if self.kind == "liver" else 2.0
        return factor * self.suv_mean + 2.0 * self.suv_sd

    def percist_threshold_sul(self) -> float | None:
        if self.sul_mean is None or self.sul_sd is None:
            return None
        factor = 1.5 if self.kind == "liver" else 2.0
        return factor * self.sul_mean + 2.0 * self.sul_sd

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "centre_mm": list(self.centre_mm),
            "shape": self.shape,
            "voxel_count": self.voxel_count,
            "suv_mean": self.suv_mean,
            "suv_sd": self.suv_sd,
            "sul_mean": self.sul_mean,
            "sul_sd": self.sul_sd,
            "threshold_suv": self.percist_threshold_suv(),
            "threshold_sul": self.percist_threshold_sul(),
        }


def _reference(pet: PetVolume, kind: str, centre_mm, inside_fn, expected_fn, shape: str) -> ReferenceRegion:
    what = "The liver reference" if kind == "liver" else "The blood-pool reference"
    pet.index_of(centre_mm, what)
    box = _box_around(pet, centre_mm, (LIVER_RADIUS_MM,) * 3)
    inside = inside_fn(_offsets_mm(pet, box, centre_mm))
    values = pet.suv[box][inside].astype(np.float64)
    expected = expected_fn()
    if values.size < MIN_REFERENCE_FRACTION * expected:
        raise PetToolError(
            f"{what} at {_mm(centre_mm)} mm reaches outside the PET ({values.size} of about {expected:.0f} "
            "voxels inside); place it further from the edge."
        )
    mean, sd = float(values.mean()), float(values.std())
    ratio = pet.sul_ratio
    return ReferenceRegion(
        kind,
        tuple(float(v) for v in centre_mm),  # type: ignore[arg-type]
        int(values.size),
        mean,
        sd,
        mean * ratio if ratio else None,
        sd * ratio if ratio else None,
        shape,
    )


def liver_reference(pet: PetVolume, centre_mm, radius_mm: float = LIVER_RADIUS_MM) -> ReferenceRegion:
    """The PERCIST liver reference: a sphere of `radius_mm` (3 cm diameter) the reader places in the
    right lobe."""
    return _reference(
        pet,
        "liver",
        centre_mm,
        lambda d: (d**2).sum(axis=-1) <= radius_mm**2 + 1e-6,
        lambda: 4.0 / 3.0 * np.pi * radius_mm**3 / float(np.prod(pet.spacing)),
        f"sphere of {2 * radius_mm:g} mm diameter",
    )


def blood_pool_reference(pet: PetVolume, centre_mm) -> ReferenceRegion:
    """The PERCIST fallback when the liver cannot serve: a 1 cm x 2 cm cylinder in the descending
    aorta, along the patient's z axis."""
    r, h = BLOOD_POOL_RADIUS_MM, BLOOD_POOL_HALF_LENGTH_MM
    return _reference(
        pet,
        "blood pool",
        centre_mm,
        lambda d: ((d[..., 0] ** 2 + d[..., 1] ** 2) <= r**2 + 1e-6) & (np.abs(d[..., 2]) <= h + 1e-6),
        lambda: np.pi * r**2 * 2 * h / float(np.prod(pet.spacing)),
        f"cylinder {2 * r:g} mm across, {2 * h:g} mm along z",
    )


def rule_threshold(
    rule: str, region_max: float | None = None, reference: ReferenceRegion | None = None
) -> float:
    """The SUV threshold of a rule (region_max for the percentage rules, reference for PERCIST)."""
    if rule not in RULES:
        raise PetToolError(f"The rule {rule!r} is not one of {', '.join(RULES)}.")
    if rule in ("41%", "50%"):
        if region_max is None:
            raise PetToolError(
                f"The {rule} rule needs a region around the lesion (its SUVmax sets the threshold)."
            )
        return float(rule[:-1]) / 100.0 * region_max
    if rule.startswith("suv"):
        return float(rule[3:])
    if reference is None:
        raise PetToolError(
            "PERCIST needs a reference region: place the 3 cm liver sphere (--liver-at X,Y,Z), or the "
            "blood pool (--blood-pool-at X,Y,Z) when the liver cannot serve."
        )
    return reference.percist_threshold_suv()


# ----------------------------------------------------------------------------- threshold
@dataclass
class ThresholdResult:
    mask: np.ndarray  # full PET grid, bool
    box: tuple[slice, ...]  # the region's index box (the mask is empty outside it)
    threshold_suv: float
    metrics: PetLesionMetrics
    parameters: dict[str, Any]

    @property
    def method(self) -> str:
        return f"PET threshold: {self.parameters['rule_words']}"


def threshold_in_region(
    pet: PetVolume,
    region: Region,
    rule: str,
    reference: ReferenceRegion | None = None,
    seed_mm=None,
) -> ThresholdResult:
    """Threshold the region by `rule` and keep the component of the hottest voxel (or of `seed_mm`)."""
    box, inside = region.voxels(pet)
    crop = pet.suv[box]
    if not inside.any():
        raise PetToolError("The region holds no PET voxel; make it larger.")
    values = np.where(inside, crop, -np.inf)
    hottest = np.unravel_index(int(np.argmax(values)), values.shape)
    region_max = float(values[hottest])
    threshold = rule_threshold(rule, region_max, reference)
    above = inside & (crop >= threshold)
    if seed_mm is not None:
        seed = np.subtract(pet.index_of(seed_mm, "The seed"), [b.start for b in box])
        if np.any(seed < 0) or np.any(seed >= crop.shape) or not inside[tuple(seed)]:
            raise PetToolError(f"The seed ({_mm(seed_mm)} mm) lies outside the region.")
        seed = tuple(int(v) for v in seed)
        if not above[seed]:
            raise PetToolError(
                f"The seed voxel has SUV {crop[seed]:.2f}, below the threshold {threshold:.2f}: "
                "click inside the lesion, or let the hottest voxel seed it."
            )
    else:
        seed = tuple(int(v) for v in hottest)
        if not above[seed]:
            raise PetToolError(
                f"No voxel of the region reaches the threshold {threshold:.2f} (the region's SUVmax is "
                f"{region_max:.2f}): there is nothing to segment by this rule here."
            )
    labels, _ = ndimage.label(above, structure=_STRUCTURE)
    component = labels == labels[seed]
    mask = np.zeros(pet.suv.shape, dtype=bool)
    mask[box] = component
    # A result reaching the region's edge has probably leaked into the surroundings: say so.
    edge = inside & ~ndimage.binary_erosion(inside, border_value=0)
    parameters: dict[str, Any] = {
        "rule": rule,
        "rule_words": reference.words if rule == "percist" and reference else RULE_WORDS[rule],
        "threshold_suv": threshold,
        "region": region.to_dict(),
        "region_suv_max": region_max,
        "seed": "clicked voxel" if seed_mm is not None else "hottest voxel of the region",
        "seed_mm": list(pet.point_of(np.add(seed, [b.start for b in box]))),
        "connectivity": CONNECTIVITY,
        "touches_region_edge": bool((component & edge).any()),
        "image": "SUVbw",
        "sul": pet.normalisation,
    }
    if reference is not None and rule == "percist":
        parameters["reference"] = reference.to_dict()
    return ThresholdResult(mask, box, threshold, pet.metrics(mask, _bbox(component, box)), parameters)


def _bbox(component: np.ndarray, box: tuple[slice, ...]) -> tuple[slice, ...]:
    where = np.argwhere(component)
    lo, hi = where.min(axis=0), where.max(axis=0) + 1
    return tuple(slice(b.start + int(a), b.start + int(c)) for b, a, c in zip(box, lo, hi, strict=True))

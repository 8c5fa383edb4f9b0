"""An analytic torso phantom for the demo study: anatomy, FDG uptake and planted lesions.

Everything is defined in patient coordinates (DICOM LPS, mm: +x patient left, +y posterior,
+z head) by closed-form shapes, so the same subject can be rendered on any grid: the CT grid and
the PET grid share one frame of reference and agree by construction. The z range covers the
upper thorax (axilla, lung apices) down to the kidneys.

Each subject is drawn from a seeded RNG (body size, fat, uptake, lesion size/position/uptake), so
the demo is reproducible and differs between subjects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

# Tissue codes (index into the HU and SUV tables below).
AIR, SKIN, FAT, MUSCLE, MEDIASTINUM, ABDOMEN, LUNG, MYOCARDIUM, BLOOD, AIRWAY = range(10)
LIVER, SPLEEN, KIDNEY, URINE, STOMACH, GAS, BONE, MARROW, DISC, CANAL = range(10, 20)
BREAST_FAT, BREAST_GLAND, TABLE = range(20, 23)
# Per tissue code: (name, CT density in HU, FDG uptake in SUVbw). Liver, blood and myocardium uptake
# are overridden per subject.
TISSUES = (
    ("air", -1000, 0.0),
    ("skin", 20, 0.6),
    ("fat", -100, 0.35),
    ("muscle", 50, 0.8),
    ("mediastinum", -70, 0.55),
    ("abdomen", 25, 1.0),
    ("lung", -850, 0.35),
    ("myocardium", 45, 3.0),
    ("blood", 40, 1.6),
    ("airway", -1000, 0.0),
    ("liver", 60, 2.3),
    ("spleen", 48, 1.9),
    ("kidney", 35, 2.8),
    ("urine", 8, 9.0),
    ("stomach", 20, 1.4),
    ("gas", -1000, 0.0),
    ("bone", 700, 0.9),
    ("marrow", 200, 1.5),
    ("disc", 80, 0.7),
    ("canal", 25, 0.9),
    ("breast_fat", -100, 0.35),
    ("breast_gland", 30, 0.9),
    ("table", 150, 0.0),
)
TISSUE_NAMES = tuple(name for name, _, _ in TISSUES)
HU = np.array([hu for _, hu, _ in TISSUES], np.float32)
SUV = np.array([suv for _, _, suv in TISSUES], np.float32)


@dataclass(frozen=True)
class Grid:
    """A regular axis-aligned voxel grid: `origin` is the centre of voxel (0,0,0), as DICOM IPP."""

    shape: tuple[int, int, int]  # (nz, ny, nx) numpy order
    spacing: tuple[float, float, float]  # (sx, sy, sz) mm, SimpleITK order
    origin: tuple[float, float, float]  # (x, y, z) mm

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nz, ny, nx = self.shape
        return tuple(
            o + s * np.arange(n, dtype=np.float64)  # type: ignore[return-value]
            for o, s, n in zip(self.origin, self.spacing, (nx, ny, nz), strict=True)
        )

    def index_of(self, point: tuple[float, float, float]) -> tuple[int, int, int]:
        """(k, j, i) numpy index of the voxel whose centre is nearest `point`."""
        i, j, k = (round((p - o) / s) for p, o, s in zip(point, self.origin, self.spacing, strict=True))
        return k, j, i

    def snap(self, point: tuple[float, float, float]) -> tuple[float, float, float]:
        """The voxel centre nearest `point` (so a lesion peak falls exactly on a voxel)."""
        k, j, i = self.index_of(point)
        return tuple(
            round(o + n * s, 4) for o, s, n in zip(self.origin, self.spacing, (i, j, k), strict=True)
        )  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        return self.spacing[0] * self.spacing[1] * self.spacing[2] / 1000.0


@dataclass
class Lesion:
    name: str
    organ: str  # liver | bone | lymph node | breast | lung
    centre: tuple[float, float, float]  # mm
    radii: tuple[float, float, float]  # mm (x, y, z)
    suv_max: float  # uptake at the centre; falls to (1 - FALLOFF) x at the rim
    hu: float  # CT density inside the lesion
    label: int = 0
    character: str = ""  # bone: lytic / blastic

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radii[0] * self.radii[1] * self.radii[2] / 1000.0


LESION_FALLOFF = 0.55  # SUV at the rim = suv_max * (1 - LESION_FALLOFF)


class SmoothField:
    """A smooth random 3D texture (sum of plane waves) defined everywhere, values roughly in [-1, 1]."""

    def __init__(self, rng: np.random.Generator, waves: int = 6, wavelength: tuple[float, float] = (15, 60)):
        directions = rng.normal(size=(waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = rng.uniform(*wavelength, size=waves)
        self.k = directions * (2 * math.pi / lengths)[:, None]
        self.phase = rng.uniform(0, 2 * math.pi, size=waves)
        self.norm = math.sqrt(waves / 2)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        total = 0.0
        for (kx, ky, kz), phase in zip(self.k, self.phase, strict=True):
            total = total + np.cos(kx * x + ky * y + kz * z + phase, dtype=np.float32)
        return total / self.norm


@dataclass
class Subject:
    """One demo subject: body habitus, uptake levels and planted lesions (all in mm / SUV)."""

    index: int
    seed: int
    weight_kg: float
    height_m: float
    half_width: float  # body ellipse semi-axes (mm)
    half_depth: float
    fat: float  # subcutaneous fat thickness (mm)
    muscle: float
    breast_side: int  # +1 left, -1 right (the other side had a mastectomy)
    liver_suv: float
    blood_suv: float
    heart_suv: float
    lesions: list[Lesion] = field(default_factory=list)

    # ---- derived geometry (mm) used by the shapes below
    @property
    def cavity(self) -> tuple[float, float, float]:
        """Centre y and semi-axes of the thoraco-abdominal cavity (inside the muscle wall)."""
        wall = 2 + self.fat + self.muscle
        return -12.0, self.half_width - wall, self.half_depth - wall - 12.0

    @property
    def spine_y(self) -> float:
        cy, _, cb = self.cavity
        return cy + cb - 12.0

    @property
    def liver_centre(self) -> tuple[float, float, float]:
        cy, ca, cb = self.cavity
        return (-0.3 * ca, cy - 0.05 * cb, -205.0)

    @property
    def liver_reference(self) -> tuple[float, float, float]:
        """A point deep in the right lobe, kept free of lesions (PERCIST-style reference)."""
        cx, cy, cz = self.liver_centre
        return (cx - 25.0, cy + 5.0, cz - 10.0)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- anatomy
def _ell(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def _ell3(x, y, z, c, r):
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2


def tissue_at(s: Subject, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Tissue code at the points (x, y, z) (arrays broadcastable to one shape)."""
    shape = np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(z))
    t = np.zeros(shape, np.uint8)

    def put(mask, code):
        np.copyto(t, np.uint8(code), where=np.broadcast_to(mask, shape))

    a, b = s.half_width, s.half_depth
    cy, ca, cb = s.cavity
    texture = SmoothField(np.random.default_rng(s.seed + 1))
    # Couch under the patient (curved carbon shell).
    bow = b + 12 + 0.0006 * x**2
    put((y > bow) & (y < bow + 8) & (np.abs(x) < 230), TABLE)
    # Body wall: skin, subcutaneous fat, muscle; an axillary fat pad near the top.
    put(_ell(x, y, 0, 0, a, b) <= 1, SKIN)
    put(_ell(x, y, 0, 0, a - 2, b - 2) <= 1, FAT)
    axilla = (_ell3(x, y, z, (a - 12, -0.05 * b, -35), (40, 0.45 * b, 65)) <= 1) | (
        _ell3(x, y, z, (-(a - 12), -0.05 * b, -35), (40, 0.45 * b, 65)) <= 1
    )
    put(axilla & (t <= SKIN), FAT)
    put(_ell(x, y, 0, 0, a - 2 - s.fat, b - 2 - s.fat) <= 1, MUSCLE)
    # Breast on one side: fat with fibroglandular tissue, a mound in front of the chest wall.
    breast_c = (s.breast_side * 0.42 * a, -0.78 * b, -95.0)
    breast_r = (62.0, 0.42 * b, 55.0)
    in_breast = (_ell3(x, y, z, breast_c, breast_r) <= 1) & (y < -0.55 * b) & (t != MUSCLE)
    put(in_breast, BREAST_FAT)
    gland = (
        in_breast
        & (_ell3(x, y, z, breast_c, tuple(0.7 * r for r in breast_r)) <= 1)
        & (texture(x, y, z) > -0.2)
    )
    put(gland, BREAST_GLAND)

    cavity = _ell(x, y, 0, cy, ca, cb) <= 1
    rho2 = _ell(x, y, 0, cy, ca, cb)
    diaphragm = np.where(x < 0, -140.0, -155.0) - 45.0 * np.minimum(rho2, 1.0)
    thorax = cavity & (z > diaphragm)
    abdomen = cavity & (z <= diaphragm)
    put(thorax, MEDIASTINUM)
    put(abdomen, ABDOMEN)
    # Lungs: two ellipses, tapering to the apices, kept apart by the mediastinum.
    taper = np.sqrt(np.clip(1.0 - ((z + 60.0) / 62.0) ** 2, 0.0, 1.0))
    taper = np.where(z < -60.0, 1.0, taper)
    lung = np.zeros(shape, bool)
    for side in (-1, 1):
        lung |= (
            _ell(x, y, side * 0.55 * ca, cy + 0.05 * cb, 0.43 * ca * taper + 1e-3, 0.9 * cb * taper + 1e-3)
            <= 1
        )
    put(thorax & lung & (np.abs(x) > 0.17 * ca), LUNG)
    # Airway: trachea, then the two main bronchi below the carina.
    put(thorax & (z > -75) & (_ell(x, y, 0, cy + 0.1 * cb, 9, 9) <= 1), AIRWAY)
    for side in (-1, 1):
        put(thorax & (z <= -75) & (z > -95) & (_ell(x, y, side * 14, cy + 0.1 * cb, 6, 6) <= 1), AIRWAY)
    # Heart: myocardium around blood; ascending and descending aorta; IVC in the abdomen.
    heart_c, heart_r = (0.12 * ca, cy - 0.25 * cb, -108.0), (0.4 * ca, 0.5 * cb, 42.0)
    put(thorax & (_ell3(x, y, z, heart_c, heart_r) <= 1), MYOCARDIUM)
    put(thorax & (_ell3(x, y, z, heart_c, tuple(r - 10 for r in heart_r)) <= 1), BLOOD)
    put(thorax & (z > -85) & (z < -55) & (_ell(x, y, -8, cy - 0.35 * cb, 14, 14) <= 1), BLOOD)
    put(_ell(x, y, 22, s.spine_y - 17, 12, 12) <= 1, BLOOD)
    put(abdomen & (_ell(x, y, -25, s.spine_y - 12, 11, 11) <= 1), BLOOD)
    # Upper abdomen organs, all below the diaphragm.
    put(abdomen & (_ell3(x, y, z, s.liver_centre, (0.62 * ca, 0.8 * cb, 75)) <= 1), LIVER)
    stomach_c, stomach_r = (0.4 * ca, cy - 0.35 * cb, -190.0), (0.28 * ca, 0.32 * cb, 38.0)
    in_stomach = abdomen & (_ell3(x, y, z, stomach_c, stomach_r) <= 1)
    put(in_stomach, STOMACH)
    put(in_stomach & (y < stomach_c[1] - 0.55 * stomach_r[1]), GAS)  # supine: gas rises anteriorly
    put(abdomen & (_ell3(x, y, z, (0.62 * ca, cy + 0.4 * cb, -195), (0.22 * ca, 0.33 * cb, 45)) <= 1), SPLEEN)
    for side, kz in ((-1, -275.0), (1, -262.0)):
        kc = (side * 0.42 * ca, s.spine_y - 4, kz)
        put(abdomen & (_ell3(x, y, z, kc, (0.16 * ca, 0.2 * cb, 48)) <= 1), KIDNEY)
        put(abdomen & (_ell3(x, y, z, (kc[0] - side * 8, kc[1] - 4, kz), (8, 9, 18)) <= 1), URINE)
        put(abdomen & (z < -225) & (_ell(x, y, side * 34, s.spine_y - 2, 13, 15) <= 1), MUSCLE)  # psoas
    # Spine: vertebral bodies (cortex + marrow, discs every 32 mm), canal, lamina, spinous process.
    sy = s.spine_y
    vb = _ell(x, y, 0, sy, 20, 16)
    put(vb <= 1, BONE)
    put(vb <= 0.68, MARROW)
    put((vb <= 1) & (np.mod(z + 300.0, 32.0) < 6.0), DISC)
    canal = _ell(x, y, 0, sy + 27, 12.5, 12.5)
    put((canal <= 1) & (y > sy + 20), BONE)
    put(_ell(x, y, 0, sy + 27, 8, 8) <= 1, CANAL)
    put(_ell(x, y, 0, sy + 46, 4, 10) <= 1, BONE)
    # Ribs: oblique bands in the chest wall, descending towards the front; sternum in front.
    phi = np.arctan2(np.abs(x), y - cy)  # 0 posterior, pi anterior
    in_wall = (rho2 > 1.06) & (rho2 < 1.17)
    ribs = in_wall & (phi > 0.45) & (phi < 2.75) & (np.mod(z + 35.0 * phi, 30.0) < 9.0) & (z > -235)
    put(ribs, BONE)
    sternum = _ell(x, y, 0, cy - cb - 7, 15, 6)
    put((sternum <= 1) & (z > -170) & (z < -15), BONE)
    put((sternum <= 0.5) & (z > -170) & (z < -15), MARROW)
    return t


# --------------------------------------------------------------------------- rendering
def _lesion_shape(lesion: Lesion, x, y, z) -> np.ndarray:
    """Normalised ellipsoidal radius squared (<= 1 inside)."""
    return _ell3(x, y, z, lesion.centre, lesion.radii)


def _chunks(n: int, size: int = 16):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def render_ct(s: Subject, grid: Grid) -> np.ndarray:
    """CT in HU (int16, numpy order z, y, x): tissue densities, textures, lesions and noise."""
    xs, ys, zs = grid.axes()
    rng = np.random.default_rng(s.seed + 2)
    bowel, vessels = (
        SmoothField(np.random.default_rng(s.seed + 3)),
        SmoothField(np.random.default_rng(s.seed + 4), 5, (20, 45)),
    )
    out = np.empty(grid.shape, np.int16)
    x, y = xs[None, None, :], ys[None, :, None]
    for zslice in _chunks(grid.shape[0]):
        z = zs[zslice][:, None, None]
        t = tissue_at(s, x, y, z)
        hu = HU[t]
        abd = t == ABDOMEN
        texture = bowel(x, y, z)
        hu = np.where(abd, np.where(texture < -0.35, -90.0, 25.0 + 15.0 * texture), hu)
        hu = np.where((t == LUNG) & (np.abs(vessels(x, y, z)) < 0.05), 30.0, hu)  # pulmonary vessels
        for lesion in s.lesions:
            hu = np.where(_lesion_shape(lesion, x, y, z) <= 1, lesion.hu, hu)
        noise = rng.standard_normal(hu.shape, dtype=np.float32) * 12.0
        out[zslice] = np.clip(np.rint(hu + noise), -1024, 3071).astype(np.int16)
    return out


def render_suv(s: Subject, grid: Grid, supersample: int = 2) -> np.ndarray:
    """FDG uptake in SUVbw (float32, z, y, x): tissue uptake with partial volume, blur, noise, lesions.

    Lesions are added last as max(background, profile), so each lesion's SUVmax is exactly its
    planted value at its centre voxel (lesion centres sit on PET voxel centres).
    """
    xs, ys, zs = grid.axes()
    table = SUV.copy()
    table[LIVER], table[BLOOD], table[MYOCARDIUM] = s.liver_suv, s.blood_suv, s.heart_suv
    n = supersample
    offsets = [(o - (n - 1) / 2) / n for o in range(n)]
    sub = lambda axis, step: (axis[:, None] + np.array(offsets)[None, :] * step).ravel()  # noqa: E731
    fx, fy = sub(xs, grid.spacing[0]), sub(ys, grid.spacing[1])
    suv = np.empty(grid.shape, np.float32)
    nz, ny, nx = grid.shape
    for zslice in _chunks(nz, 8):
        fz = sub(zs[zslice], grid.spacing[2])
        fine = table[tissue_at(s, fx[None, None, :], fy[None, :, None], fz[:, None, None])]
        # Partial-volume average of the sub-voxels (what a real scanner integrates over a voxel).
        suv[zslice] = fine.reshape(-1, n, ny, n, nx, n).mean(axis=(1, 3, 5))
    rng = np.random.default_rng(s.seed + 5)
    sigma_mm = 2.5  # ~6 mm FWHM scanner resolution
    suv = ndimage.gaussian_filter(suv, sigma=[sigma_mm / grid.spacing[i] for i in (2, 1, 0)])
    noise = ndimage.gaussian_filter(rng.standard_normal(grid.shape).astype(np.float32), 0.6)
    suv = np.clip(suv * (1.0 + 0.25 * noise), 0.0, None).astype(np.float32)
    x, y, z = xs[None, None, :], ys[None, :, None], zs[:, None, None]
    for lesion in s.lesions:
        r2 = _lesion_shape(lesion, x, y, z)
        profile = np.where(r2 <= 1, lesion.suv_max * (1.0 - LESION_FALLOFF * r2), 0.0).astype(np.float32)
        np.maximum(suv, profile, out=suv)
    return suv


def lesion_labels(s: Subject, grid: Grid) -> np.ndarray:
    """Label map (uint8, z, y, x): lesion k has label `lesion.label`; voxel centres inside count."""
    xs, ys, zs = grid.axes()
    labels = np.zeros(grid.shape, np.uint8)
    x, y = xs[None, None, :], ys[None, :, None]
    for zslice in _chunks(grid.shape[0]):
        z = zs[zslice][:, None, None]
        for lesion in s.lesions:
            inside = _lesion_shape(lesion, x, y, z) <= 1
            labels[zslice][np.broadcast_to(inside, labels[zslice].shape)] = lesion.label
    return labels


# --------------------------------------------------------------------------- subjects
def _fits(s: Subject, lesion: Lesion, allowed: set[int], margin: float = 1.0) -> bool:
    """Whether the lesion's centre and its whole surface (sampled) lie in the `allowed` tissues."""
    golden = math.pi * (3 - math.sqrt(5))
    k = np.arange(60)
    zz = 1 - 2 * (k + 0.5) / 60
    rr = np.sqrt(1 - zz**2)
    dirs = np.stack([rr * np.cos(golden * k), rr * np.sin(golden * k), zz], axis=1)
    points = np.vstack([[0, 0, 0], dirs * (np.array(lesion.radii) + margin)]) + np.array(lesion.centre)
    tissue = tissue_at(s, points[:, 0], points[:, 1], points[:, 2])
    return bool(np.isin(tissue, list(allowed)).all())


def _overlaps(lesion: Lesion, others: list[Lesion], gap: float = 6.0) -> bool:
    c = np.array(lesion.centre)
    return any(
        np.linalg.norm(c - np.array(o.centre)) < max(lesion.radii) + max(o.radii) + gap for o in others
    )


@dataclass(frozen=True)
class LesionPlan:
    name: str
    organ: str
    allowed: frozenset[int]  # tissues the whole lesion must lie in
    site: Callable[[Subject, np.random.Generator], tuple[float, float, float]]  # candidate centre (mm)
    radius: tuple[float, float]  # mm range
    suv_max: tuple[float, float]
    hu: float


def _place(s: Subject, rng: np.random.Generator, pet: Grid, plan: LesionPlan) -> Lesion:
    """Draw a lesion that fits inside its organ, does not touch the others and peaks on a PET voxel."""
    reference = Lesion("ref", "", s.liver_reference, (15.0, 15.0, 15.0), 0, 0)
    for _ in range(400):
        r = rng.uniform(*plan.radius)
        radii = tuple(round(float(r * f), 1) for f in rng.uniform(0.8, 1.2, 3))
        centre = pet.snap(plan.site(s, rng))
        suv_max = round(float(rng.uniform(*plan.suv_max)), 2)
        lesion = Lesion(plan.name, plan.organ, centre, radii, suv_max, plan.hu)  # type: ignore[arg-type]
        if _fits(s, lesion, plan.allowed) and not _overlaps(lesion, [*s.lesions, reference]):
            return lesion
    raise RuntimeError(f"could not place {plan.name} in subject {s.index}")  # a phantom bug, not user input


def make_subject(index: int, pet: Grid, seed: int = 2025) -> Subject:
    """Subject `index` (1-based) with its lesions; deterministic for a given seed."""
    rng = np.random.default_rng([seed, index])
    weight = round(float(rng.uniform(56, 82)), 1)
    scale = math.sqrt(weight / 68.0)
    s = Subject(
        index=index,
        seed=seed * 100 + index,
        weight_kg=weight,
        height_m=round(float(rng.uniform(1.55, 1.75)), 2),
        half_width=round(160 * scale, 1),
        half_depth=round(112 * scale, 1),
        fat=round(float(rng.uniform(12, 24)), 1),
        muscle=round(float(rng.uniform(9, 13)), 1),
        breast_side=1 if index % 2 else -1,
        liver_suv=round(float(rng.uniform(2.0, 2.5)), 2),
        blood_suv=round(float(rng.uniform(1.4, 1.8)), 2),
        heart_suv=round(float(rng.uniform(2.5, 7.0)), 2),
    )
    for plan in _lesion_plans(s):
        lesion = _place(s, rng, pet, plan)
        if plan.organ == "bone":
            lesion.character = "blastic" if rng.uniform() < 0.5 else "lytic"
            lesion.hu = 480.0 if lesion.character == "blastic" else 35.0
        lesion.label = len(s.lesions) + 1
        s.lesions.append(lesion)
    return s


def _lesion_plans(s: Subject) -> list[LesionPlan]:
    """Every subject has a liver, a vertebral and a nodal lesion; the node's station and a fourth
    lesion (breast primary, second liver metastasis or lung nodule) vary with the subject."""
    soft = frozenset({FAT, MEDIASTINUM, BREAST_FAT, MUSCLE})
    liver, bone = frozenset({LIVER}), frozenset({BONE, MARROW})
    plans = [
        LesionPlan("liver metastasis", "liver", liver, _liver_site, (9, 15), (5, 12), 38.0),
        LesionPlan("vertebral metastasis", "bone", bone, _spine_site, (6.5, 8.0), (4, 10), 0.0),
        LesionPlan("mediastinal node", "lymph node", soft, _mediastinum_site, (7, 9), (4, 9), 42.0)
        if s.index % 3 == 2
        else LesionPlan("axillary node", "lymph node", soft, _axilla_site, (7, 10), (4, 9), 42.0),
    ]
    breast = frozenset({BREAST_FAT, BREAST_GLAND})
    plans.append(
        {
            1: LesionPlan("breast primary", "breast", breast, _breast_site, (9, 13), (8, 15), 45.0),
            2: LesionPlan("liver metastasis 2", "liver", liver, _liver_site, (6, 8), (4, 6), 40.0),
            0: LesionPlan("lung nodule", "lung", frozenset({LUNG}), _lung_site, (6, 8), (4, 6), 30.0),
        }[s.index % 3]
    )
    return plans


# Where each kind of lesion is drawn (a candidate centre in mm; _place retries until it fits).
def _liver_site(s: Subject, g: np.random.Generator) -> tuple[float, float, float]:
    _, ca, cb = s.cavity
    lx, ly, lz = s.liver_centre
    return lx + g.uniform(-0.18, 0.27) * ca, ly + g.uniform(-0.32, 0.32) * cb, lz + g.uniform(-19, 26)


def _spine_site(s: Subject, g: np.random.Generator) -> tuple[float, float, float]:
    # Mid-vertebral levels (discs are 6 mm thick every 32 mm from z = -300).
    return (
        g.uniform(-2, 2),
        s.spine_y + g.uniform(-2, 2),
        -300 + 32 * int(g.integers(1, 8)) + 19 + g.uniform(-2, 2),
    )


def _axilla_site(s: Subject, g: np.random.Generator) -> tuple[float, float, float]:
    x = s.breast_side * (s.half_width + g.uniform(-8, 8))
    return x, g.uniform(-0.25, 0.15) * s.half_depth, g.uniform(-50, -20)


def _mediastinum_site(s: Subject, g: np.random.Generator) -> tuple[float, float, float]:
    cy, ca, cb = s.cavity  # prevascular, above the heart and the ascending aorta
    return g.uniform(-0.05, 0.05) * ca, cy + g.uniform(-0.4, -0.25) * cb, g.uniform(-50, -30)


def _breast_site(s: Subject, g: np.random.Generator) -> tuple[float, float, float]:
    x, y, z = s.breast_side * 0.42 * s.half_width, -0.78 * s.half_depth, -95.0
    return x + g.uniform(-20, 20), y - g.uniform(0, 10), z + g.uniform(-15, 15)


def _lung_site(s: Subject, g: np.random.Generator) -> tuple[float, float, float]:
    cy, ca, cb = s.cavity
    return (
        s.breast_side * 0.55 * ca + g.uniform(-15, 15),
        cy + g.uniform(-0.3, 0.4) * cb,
        g.uniform(-120, -50),
    )

"""Colour deconvolution of H&E: Ruifrok & Johnston's fixed vectors and Macenko's per-slide estimate.

Optical density (OD) is in scikit-image's units throughout: `log(I) / log(1e-6)` with intensities I
in [0, 1] clipped at 1e-6 (so 0 = glass, 1 = a pixel at 1e-6 of the light). With the Ruifrok
matrix, `deconvolve(rgb)` is exactly `skimage.color.rgb2hed(rgb)` (tested to 1e-9).

Macenko et al. (ISBI 2009): the OD of stained pixels (every channel above `beta`) lies near the
plane of the two main eigenvectors of its covariance; the stain vectors are the directions at the
`alpha` and `100 - alpha` percentiles of the angle in that plane; hematoxylin is the one with the
larger red OD. When the estimate is not trustworthy (too few stained pixels, vectors nearly
parallel or with negative OD) the Ruifrok vectors are used instead, and the reason is recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.radiomics.stain import RGB_FROM_HED

_LOG_ADJUST = np.log(1e-6)
#: Ruifrok & Johnston's hematoxylin and eosin OD vectors (rows), as scikit-image uses them.
RUIFROK_HE = RGB_FROM_HED[:2].copy()
MIN_STAINED_PIXELS = 500
MIN_ANGLE_DEG = 5.0  # H and E closer than this cannot be separated


class StainError(PalmaresError):
    """Pixels that cannot be deconvolved (message is a plain sentence)."""


@dataclass(frozen=True)
class StainVectors:
    """Hematoxylin and eosin OD vectors (RGB, as given or unit length) and how they were found."""

    hematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]
    method: str  # macenko | ruifrok
    reason: str = ""  # why Ruifrok's defaults were used, when Macenko was asked for
    stained_pixels: int = 0

    @property
    def rgb_from_stains(self) -> np.ndarray:
        """3x3: rows H, E and a residual orthogonal to both (scikit-image's convention)."""
        h, e = np.asarray(self.hematoxylin, float), np.asarray(self.eosin, float)
        if self.method == "ruifrok":
            return RGB_FROM_HED.copy()  # H, E, DAB exactly as rgb2hed
        residual = np.cross(h, e)
        residual /= np.linalg.norm(residual)
        return np.vstack([h, e, residual])

    def to_dict(self) -> dict:
        return asdict(self)


RUIFROK = StainVectors(tuple(RUIFROK_HE[0]), tuple(RUIFROK_HE[1]), "ruifrok")


def _as_unit_float(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim < 2 or rgb.shape[-1] < 3:
        raise StainError(f"Colour deconvolution needs RGB pixels (..., 3); got shape {rgb.shape}.")
    rgb = rgb[..., :3]
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float64) / 255.0
    if np.issubdtype(rgb.dtype, np.floating):
        return rgb.astype(np.float64, copy=True)
    raise StainError(f"RGB pixels must be 8-bit or floating point in [0, 1], not {rgb.dtype}.")


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """OD per channel (..., 3), scikit-image units (see the module docstring)."""
    values = _as_unit_float(rgb)
    np.maximum(values, 1e-6, out=values)
    return np.log(values) / _LOG_ADJUST


def deconvolve(rgb: np.ndarray, stains: StainVectors = RUIFROK) -> np.ndarray:
    """Stain concentrations (..., 3): hematoxylin, eosin, residual (DAB for Ruifrok), clipped at 0."""
    concentrations = optical_density(rgb) @ np.linalg.inv(stains.rgb_from_stains)
    return np.maximum(concentrations, 0, out=concentrations)


def macenko(
    rgb: np.ndarray, beta: float = 0.15, alpha: float = 1.0, mask: np.ndarray | None = None
) -> StainVectors:
    """Macenko's H and E vectors from RGB pixels (any shape (..., 3)); Ruifrok's when not trustworthy.

    `beta` is the OD threshold (natural-log units, Macenko's 0.15) below which a channel counts as
    unstained; `mask` (same shape without the channel axis) limits the pixels considered (tissue).
    """
    od = optical_density(rgb) * -_LOG_ADJUST  # natural-log OD, the units Macenko's beta is given in
    od = od.reshape(-1, 3) if mask is None else od[np.asarray(mask, bool)].reshape(-1, 3)
    stained = od[np.all(od > beta, axis=1)]
    n = len(stained)
    if n < MIN_STAINED_PIXELS:
        return _fallback(f"only {n} stained pixels (at least {MIN_STAINED_PIXELS} are needed)", n)
    _, vectors = np.linalg.eigh(np.cov(stained, rowvar=False))
    plane = vectors[:, [2, 1]]  # the two largest eigenvalues (eigh sorts ascending)
    plane *= np.where(plane.sum(axis=0) < 0, -1.0, 1.0)  # point into positive OD
    projected = stained @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [alpha, 100 - alpha])
    v_low = plane @ np.array([np.cos(low), np.sin(low)])
    v_high = plane @ np.array([np.cos(high), np.sin(high)])
    h, e = (v_low, v_high) if v_low[0] > v_high[0] else (v_high, v_low)
    h, e = h / np.linalg.norm(h), e / np.linalg.norm(e)
    if h.min() < 0 or e.min() < 0:
        return _fallback("the estimated vectors have negative optical density", n)
    angle = np.degrees(np.arccos(np.clip(h @ e, -1, 1)))
    if angle < MIN_ANGLE_DEG:
        return _fallback(f"the estimated vectors are only {angle:.1f}° apart", n)
    return StainVectors(tuple(map(float, h)), tuple(map(float, e)), "macenko", "", n)


def _fallback(reason: str, n: int) -> StainVectors:
    return StainVectors(RUIFROK.hematoxylin, RUIFROK.eosin, "ruifrok", f"Macenko not used: {reason}", n)


def angle_between(a, b) -> float:
    """Degrees between two OD vectors (direction only)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))

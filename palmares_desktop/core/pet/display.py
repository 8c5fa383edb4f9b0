"""PET display ranges and the PET-over-CT fusion the reading room draws (numbers only, no Qt).

Fusion is a translucent colour overlay, as clinical PET/CT viewers draw it: each screen pixel is
`(1 - a) * CT + a * colour(SUV)`, with `a = opacity * alpha(SUV)`. Additive blending (CT + colour)
saturates to white over bone, so a hot vertebral metastasis in an abdomen window vanishes white on
white; the overlay instead replaces part of the grey by the colour. The colour table stops short of
its base colormap's near-white top (`FUSION_TOP`), so the hottest colour stays saturated over bone.
"""

from __future__ import annotations

import numpy as np

#: Upper end of the PET colour scale for SUV-calibrated images (SUVbw), as read clinically.
DEFAULT_SUV_MAX = 6.0
#: Default weight of the PET colour over the CT in the fused view.
DEFAULT_FUSION_OPACITY = 0.6
#: Fraction of the display range over which the PET fades in: cold tissue leaves the CT untouched.
FUSION_FADE_IN = 0.3
#: The fused colour table uses the base colormap's range 0..FUSION_TOP (inferno: up to orange-yellow).
FUSION_TOP = 0.8


def uncalibrated_display_max(values: np.ndarray, percentile: float = 99.5) -> float:
    """A robust top of the colour scale for a PET that could not be calibrated to SUV (values as
    stored, e.g. Bq/mL): the 99.5th percentile, so a few hot voxels do not wash the image out."""
    top = float(np.percentile(values, percentile)) if values.size else 0.0
    return top if top > 0 else 1.0


def fusion_positions(n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(positions on the display range 0..1, where to sample the base colormap) for a fusion table."""
    positions = np.linspace(0.0, 1.0, n)
    return positions, positions * FUSION_TOP


def fusion_table(base_rgb: np.ndarray, positions: np.ndarray, fade_in: float = FUSION_FADE_IN) -> np.ndarray:
    """RGBA table (n, 4): the base colours sampled at `fusion_positions()[1]` with an alpha ramp from 0
    (SUV 0) to 1 at `fade_in` of the display range."""
    table = np.empty((len(positions), 4), dtype=np.float32)
    table[:, :3] = np.asarray(base_rgb, dtype=np.float32)[:, :3]
    table[:, 3] = np.clip(positions / max(fade_in, 1e-6), 0.0, 1.0)
    return table


def fuse(
    base_rgb: np.ndarray, suv: np.ndarray, suv_max: float, table: np.ndarray, opacity: float
) -> np.ndarray:
    """The translucent overlay over CT pixels `base_rgb` (..., 3) at `suv` (...): RGB 0..1."""
    fraction = np.clip(np.nan_to_num(suv, nan=0.0) / suv_max if suv_max > 0 else 0.0, 0.0, 1.0)
    index = np.rint(fraction * (len(table) - 1)).astype(np.int64)
    colour, alpha = table[index, :3], table[index, 3:4] * opacity
    return (1.0 - alpha) * base_rgb + alpha * colour


def fused_pixel(ct_rgb, suv: float, suv_max: float, table: np.ndarray, opacity: float) -> np.ndarray:
    """The RGB (0..1) a translucent overlay gives over one CT pixel `ct_rgb` (0..1) at `suv`."""
    base = np.asarray(ct_rgb, dtype=np.float64).reshape(1, 3)
    return fuse(base, np.array([float(suv)]), suv_max, np.asarray(table), opacity)[0]

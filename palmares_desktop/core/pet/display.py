"""PET display ranges the reading room starts from."""

from __future__ import annotations

import numpy as np

#: Upper end of the PET colour scale for SUV-calibrated images (SUVbw), as read clinically.
DEFAULT_SUV_MAX = 6.0


def uncalibrated_display_max(values: np.ndarray, percentile: float = 99.5) -> float:
    """A robust top of the colour scale for a PET that could not be calibrated to SUV (values as
    stored, e.g. Bq/mL): the 99.5th percentile, so a few hot voxels do not wash the image out."""
    top = float(np.percentile(values, percentile)) if values.size else 0.0
    return top if top > 0 else 1.0

"""What a label value may be, for every reader of label maps (segmentation add, radiomics).

Labels are whole numbers from 1 to MAX_LABEL; 0 is the background. Masks are stored and handed
to pyradiomics as 32-bit integers, so a larger value (or +inf, or NaN) cannot survive the cast:
it would become another number or 0, and the user would hear "label 1 is not in the mask" or
"the mask is empty" instead of what is wrong with the file.
"""

from __future__ import annotations

import numpy as np

#: The largest label a mask may hold (int32, the type masks are cast to).
MAX_LABEL = 2**31 - 1


def label_problem(label: int) -> str | None:
    """Why `label` cannot be asked for, or None."""
    if label == 0:
        return (
            "Label 0 is the background (every voxel outside the lesions), not a lesion: give the "
            "lesion's label, e.g. --label 1."
        )
    if not 0 < label <= MAX_LABEL:
        return f"Label {label} is out of range: labels are whole numbers from 1 to {MAX_LABEL}."
    return None


def label_values_problem(values: np.ndarray, name: str) -> str | None:
    """Why the voxel values of `name` cannot be a label map, or None (checks the whole array)."""
    if values.dtype.kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            bad = values[~finite]
            what = "NaN" if np.isnan(bad.flat[0]) else f"{bad.flat[0]:+}"
            return (
                f"{name} holds {bad.size} voxel(s) that are not numbers ({what}); a label map must hold "
                "whole numbers (0 outside, labels inside)."
            )
        fractional = values[values != np.round(values)]
        if fractional.size:
            return (
                f"{name} holds fractional values (e.g. {fractional.flat[0]:.3g}); a label map must hold "
                "whole numbers (0 outside, labels inside)."
            )
    small_unsigned = values.dtype.kind == "u" and values.dtype.itemsize < 4  # cannot be out of range
    if values.size and values.dtype.kind in "fiu" and not small_unsigned:
        low, high = values.min(), values.max()
        worst = high if high > MAX_LABEL else low
        if low < 0 or high > MAX_LABEL:
            return (
                f"{name} holds the value {worst:.0f}, outside the range of labels (0 outside, 1 to "
                f"{MAX_LABEL} inside): it is not an integer label map."
            )
    return None

"""Bland-Altman agreement of one measurement by two readings (Bland & Altman 1986, DOMAIN.md §8).

For each lesion: the mean of the two readings and their difference (b - a); over lesions: the bias
(mean difference), its standard deviation (n - 1) and the 95% limits of agreement, bias ± 1.96 SD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlandAltman:
    measure: str
    means: tuple[float, ...]
    differences: tuple[float, ...]  # b - a
    bias: float | None
    sd: float | None
    lower_loa: float | None
    upper_loa: float | None

    @property
    def n(self) -> int:
        return len(self.means)

    def sentence(self) -> str:
        if self.bias is None:
            return f"{self.measure}: no pair of readings to compare."
        if self.sd is None:
            return f"{self.measure}: one pair, difference {self.bias:.3g} (limits need two or more)."
        return (
            f"{self.measure}: bias {self.bias:.3g}, 95% limits of agreement {self.lower_loa:.3g} to "
            f"{self.upper_loa:.3g} (n = {self.n})."
        )


def bland_altman(measure: str, a: Sequence[float | None], b: Sequence[float | None]) -> BlandAltman:
    """Pairs where either reading is missing (None or NaN) are left out."""
    x = np.array([np.nan if v is None else float(v) for v in a])
    y = np.array([np.nan if v is None else float(v) for v in b])
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    means, diffs = (x + y) / 2.0, y - x
    bias = float(diffs.mean()) if len(diffs) else None
    sd = float(diffs.std(ddof=1)) if len(diffs) >= 2 else None
    low, high = (bias - 1.96 * sd, bias + 1.96 * sd) if sd is not None else (None, None)
    return BlandAltman(measure, tuple(means.tolist()), tuple(diffs.tolist()), bias, sd, low, high)

"""Feature reliability across readers: ICC(2,1) and ICC(3,1) with 95% CIs (Shrout & Fleiss 1979;
confidence intervals as McGraw & Wong 1996), and the Koo & Li 2016 bands (DOMAIN.md §8).

- ICC(2,1): two-way random effects, absolute agreement, single rater. Readers are a sample of
  possible readers: the usual choice for inter-reader robustness of radiomic features.
- ICC(3,1): two-way mixed effects, consistency, single rater. These readers only; a systematic
  offset between readers is not counted as disagreement.

Vectorised over features: 1,200 features x 100 lesions x 3 readers is one numpy pass. A feature with
a missing value uses the lesions complete for that feature; a feature constant over every lesion has
no between-lesion variance and its ICC is undefined (NaN, said in `note`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from palmares_desktop.core.agreement.overlap import AgreementError

KOO_LI_BANDS = ((0.5, "poor"), (0.75, "moderate"), (0.9, "good"), (float("inf"), "excellent"))
ICC_KINDS = ("ICC(2,1)", "ICC(3,1)")


def koo_li_band(value: float) -> str:
    """Koo & Li: < 0.5 poor, 0.5-0.75 moderate, 0.75-0.9 good, > 0.9 excellent."""
    if value is None or not np.isfinite(value):
        return "undefined"
    for upper, name in KOO_LI_BANDS:
        if value < upper:
            return name
    return "excellent"


@dataclass(frozen=True)
class FeatureICC:
    feature: str
    kind: str
    icc: float
    ci_low: float
    ci_high: float
    n_targets: int
    n_raters: int
    band: str  # Koo & Li band of the point estimate
    band_ci: str  # "good..excellent": the bands the 95% CI spans, which is what Koo & Li judge on
    note: str = ""


def _mean_squares(x: np.ndarray):
    """Two-way ANOVA mean squares for x of shape (features, n targets, k raters)."""
    _, n, k = x.shape
    grand = x.mean(axis=(1, 2), keepdims=True)
    row_means = x.mean(axis=2, keepdims=True)
    col_means = x.mean(axis=1, keepdims=True)
    ss_rows = k * ((row_means - grand) ** 2).sum(axis=(1, 2))
    ss_cols = n * ((col_means - grand) ** 2).sum(axis=(1, 2))
    ss_total = ((x - grand) ** 2).sum(axis=(1, 2))
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    return msr, msc, mse


def icc_arrays(x: np.ndarray, alpha: float = 0.05) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{kind: (icc, ci_low, ci_high)} for complete data x of shape (features, n targets, k raters)."""
    x = np.asarray(x, dtype=float)
    _, n, k = x.shape
    msr, msc, mse = _mean_squares(x)
    # Constant features divide by zero and near-perfect ones overflow the F bounds: NaN/inf there is
    # the honest answer (reported as "undefined" by feature_iccs), not a warning per feature.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        icc3 = (msr - mse) / (msr + (k - 1) * mse)
        icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        # ICC(3,1): exact F-based interval.
        f3 = msr / mse
        df1, df2 = n - 1, (n - 1) * (k - 1)
        f_low = f3 / stats.f.ppf(1 - alpha / 2, df1, df2)
        f_high = f3 * stats.f.ppf(1 - alpha / 2, df2, df1)
        icc3_low = (f_low - 1) / (f_low + k - 1)
        icc3_high = (f_high - 1) / (f_high + k - 1)
        # ICC(2,1): Satterthwaite-approximated degrees of freedom (McGraw & Wong, case 2A).
        fj = msc / mse
        vn = (k - 1) * (n - 1) * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        vd = (n - 1) * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
        v = vn / vd
        f2_high = stats.f.ppf(1 - alpha / 2, n - 1, v)
        f2_low = stats.f.ppf(1 - alpha / 2, v, n - 1)
        denom = k * msc + (k * n - k - n) * mse
        icc2_low = n * (msr - f2_high * mse) / (f2_high * denom + n * msr)
        icc2_high = n * (f2_low * msr - mse) / (denom + n * f2_low * msr)
    return {"ICC(2,1)": (icc2, icc2_low, icc2_high), "ICC(3,1)": (icc3, icc3_low, icc3_high)}


def feature_iccs(
    values: np.ndarray, features: list[str], kind: str = "ICC(2,1)", alpha: float = 0.05
) -> list[FeatureICC]:
    """ICC per feature. `values` has shape (features, targets, raters); NaN marks a missing value."""
    if kind not in ICC_KINDS:
        raise AgreementError(f"ICC kind {kind!r} is not one of {', '.join(ICC_KINDS)}.")
    values = np.asarray(values, dtype=float)
    if values.ndim != 3 or values.shape[0] != len(features):
        raise AgreementError("Feature values must be a features x lesions x readers table.")
    _, n, k = values.shape
    if k < 2:
        raise AgreementError("Agreement needs at least two readers (or two repeats of one reader).")
    icc = np.full(len(features), np.nan)
    low, high = icc.copy(), icc.copy()
    used = np.full(len(features), n)
    complete = ~np.isnan(values).any(axis=(1, 2))
    if complete.any() and n >= 2:
        i, lo, hi = icc_arrays(values[complete], alpha)[kind]
        icc[complete], low[complete], high[complete] = i, lo, hi
    for f in np.flatnonzero(~complete):  # few in practice: a feature missing for some lesions
        rows = values[f][~np.isnan(values[f]).any(axis=1)]
        used[f] = len(rows)
        if len(rows) >= 2:
            i, lo, hi = icc_arrays(rows[None], alpha)[kind]
            icc[f], low[f], high[f] = i[0], lo[0], hi[0]
    out = []
    for f, name in enumerate(features):
        note = ""
        if used[f] < 2:
            note = "fewer than two lesions have this feature from every reader"
        elif not np.isfinite(icc[f]):
            note = "the feature is constant over these lesions: reliability is undefined"
        band_ci = koo_li_band(low[f])
        if koo_li_band(high[f]) != band_ci:
            band_ci = f"{band_ci}..{koo_li_band(high[f])}"
        out.append(
            FeatureICC(
                name, kind, float(icc[f]), float(low[f]), float(high[f]), int(used[f]), k,
                koo_li_band(icc[f]), band_ci, note,
            )
        )  # fmt: skip
    return out


def robust_features(results: list[FeatureICC], threshold: float = 0.75, by_ci: bool = False) -> list[str]:
    """Features whose ICC (or, with by_ci, the lower 95% bound) reaches `threshold` (0.75; 0.90 strict)."""
    key = (lambda r: r.ci_low) if by_ci else (lambda r: r.icc)
    return [r.feature for r in results if np.isfinite(key(r)) and key(r) >= threshold]

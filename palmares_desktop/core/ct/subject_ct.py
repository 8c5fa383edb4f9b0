"""The CT tools on a subject in the store: one call per CLI command (and per GUI tool).

- `ct_threshold_lesion`: an HU range inside a box or sphere around a point, saved as a final CT
  segmentation version of the lesion with the range, the region, the seed and the smoothing;
- `ct_grow_lesion`: region growing from a seed (tolerance around the seed's neighbourhood mean HU,
  within a maximum radius), saved the same way.

Both read the subject's CT (the series core/series_choice.py picks) in HU from the store; points are
patient coordinates in mm (DICOM LPS). `ct_report` gives what the commands print with --json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import SimpleITK as sitk

from palmares_desktop.core.ct.hu_tools import (
    CtToolError,
    CtVolume,
    HuResult,
    Region,
    hu_statistics,
    hu_threshold,
    region_grow,
)
from palmares_desktop.core.lesions import next_lesion_name
from palmares_desktop.core.model import Segmentation, Series, Subject
from palmares_desktop.core.segmentation.geometry import Grid
from palmares_desktop.core.segmentation.labelmaps import find_series
from palmares_desktop.core.segmentation.lesion_cleanup import save_mask, saved_sentence, version_report
from palmares_desktop.core.store import Store


@dataclass
class CtToolResult:
    """A CT tool's result: the mask, what it was made with, and the CT numbers inside it."""

    hu: HuResult
    method: str
    parameters: dict[str, Any]
    statistics: dict[str, Any]
    kept_existing: bool = False

    @property
    def mask(self):
        return self.hu.mask


def load_ct(store: Store, subject_code: str) -> tuple[Subject, Series, CtVolume]:
    """(subject, CT series, CT volume in HU) of the subject's CT."""
    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise CtToolError(f"There is no subject {subject_code} in this store.")
    series = find_series(store, subject.id, "CT")
    path = store.path(series.pixel_path or "")
    if not series.pixel_path or not path.is_file():
        raise CtToolError(f"The CT volume of {subject_code} is missing from the store ({series.pixel_path}).")
    if (series.units or "HU") != "HU":
        raise CtToolError(f"The CT of {subject_code} is not in HU (units {series.units}).")
    image = sitk.ReadImage(str(path))
    return subject, series, CtVolume(sitk.GetArrayFromImage(image), Grid.of(image))


def _finish(
    store: Store,
    subject: Subject,
    series: Series,
    ct: CtVolume,
    result: HuResult,
    method: str,
    parameters: dict,
    lesion_name: str | None,
    organ: str | None,
) -> tuple[Segmentation, CtToolResult]:
    statistics = hu_statistics(ct.hu, result.mask, ct.voxel_ml)
    name = lesion_name or next_lesion_name(store, subject.id, "CT lesion")
    saved, kept = save_mask(
        store, subject.code, series, ct.grid, result.mask, method, parameters, name, organ
    )
    return saved, CtToolResult(result, method, parameters, statistics, kept)


def ct_threshold_lesion(
    store: Store,
    subject_code: str,
    at_mm,
    lo: float,
    hi: float,
    size_mm: float = 60.0,
    shape: str = "box",
    seed_mm=None,
    lesion_name: str | None = None,
    organ: str | None = None,
    smooth_mm: float = 0.0,
) -> tuple[Segmentation, CtToolResult]:
    """HU threshold lo..hi (inclusive) in a box of `size_mm` edge or a sphere of `size_mm` diameter
    around `at_mm`, keeping the component of `seed_mm` (default: the largest one), saved as the
    lesion's new CT segmentation version (default name 'CT lesion N')."""
    subject, series, ct = load_ct(store, subject_code)
    region = Region(tuple(float(v) for v in at_mm), float(size_mm), shape)  # type: ignore[arg-type]
    voxels = region.voxels(ct)
    seed = ct.index_of(seed_mm, "The seed") if seed_mm is not None else None
    result = hu_threshold(ct.hu, lo, hi, voxels, seed, spacing_zyx=ct.spacing_zyx, smooth_mm=smooth_mm)
    parameters = {
        **result.parameters,
        "region": region.to_dict(),
        "seed_mm": list(ct.point_of(seed)) if seed is not None else None,
        "image": "CT (HU)",
    }
    method = f"CT threshold: {lo:g} to {hi:g} HU" + (f", smoothed {smooth_mm:g} mm" if smooth_mm else "")
    return _finish(store, subject, series, ct, result, method, parameters, lesion_name, organ)


def ct_grow_lesion(
    store: Store,
    subject_code: str,
    seed_mm,
    tolerance_hu: float,
    max_radius_mm: float = 40.0,
    lesion_name: str | None = None,
    organ: str | None = None,
    smooth_mm: float = 0.0,
) -> tuple[Segmentation, CtToolResult]:
    """Region growing from `seed_mm` (hu_tools.region_grow: ±`tolerance_hu` around the mean HU of the
    seed's 3x3x3 neighbourhood, within `max_radius_mm`), saved as the lesion's new CT version."""
    subject, series, ct = load_ct(store, subject_code)
    seed = ct.index_of(seed_mm, "The seed")
    result = region_grow(ct.hu, seed, tolerance_hu, max_radius_mm, ct.spacing_zyx, smooth_mm=smooth_mm)
    parameters = {**result.parameters, "seed_mm": list(ct.point_of(seed)), "image": "CT (HU)"}
    method = f"CT region grow: ±{tolerance_hu:g} HU within {max_radius_mm:g} mm" + (
        f", smoothed {smooth_mm:g} mm" if smooth_mm else ""
    )
    if not result.mask.any():  # cannot happen (the seed is kept), but never save an empty lesion
        raise CtToolError("Region growing kept no voxel; nothing was saved.")
    return _finish(store, subject, series, ct, result, method, parameters, lesion_name, organ)


def ct_report(store: Store, subject_code: str, seg: Segmentation, result: CtToolResult) -> dict:
    """What a CT tool saved, with the HU statistics of the original CT inside the mask."""
    stats = {k: v for k, v in result.statistics.items() if k not in ("voxel_count", "volume_ml")}
    return version_report(
        store, subject_code, seg, result.kept_existing, result.method, result.parameters, **stats
    )


def ct_lines(report: dict) -> list[str]:
    """The sentences a radiologist reads about a `ct_report`, first line first."""
    p = report["parameters"]
    lines = [saved_sentence(report)]
    if "hu_mean" in report:
        lines.append(
            f"HU mean {report['hu_mean']:.1f}  SD {report['hu_sd']:.1f}  min {report['hu_min']:.0f}  "
            f"max {report['hu_max']:.0f}  (kept {p['lower_hu']:.1f} to {p['upper_hu']:.1f} HU"
            + (f" after smoothing {p['smooth_mm']:g} mm)" if p.get("smooth_mm") else ")")
        )
    if p.get("touches_region_edge"):
        lines.append("The result reaches the edge of the region: it may have leaked into the surroundings.")
    if p.get("touches_max_radius"):
        lines.append("The result reaches the maximum radius: it may have leaked into the surroundings.")
    return lines

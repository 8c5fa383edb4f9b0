"""Per-lesion PET metrics at five thresholds: fixed SUV 2.5 and 4.0, 41 % and 50 % of SUVmax, PERCIST.

For each rule the lesion is re-segmented by the workstation's own PET threshold tool
(`palmares_desktop.core.pet.threshold.threshold_in_region`): inside a box around the drawn lesion
(its extent plus `margin_mm` on every side), seeded at the lesion's hottest voxel, 26-connected. The
percentage rules take the box's SUVmax (EANM), PERCIST takes the liver sphere the reader placed (or
`liver_at`). Each rule gives MTV, SUVmax, SUVmean, TLG, voxel count, the threshold used, the Dice
overlap with the drawn lesion and whether the result reached the box's edge (a leak). A rule that
cannot apply (nothing above the threshold, no liver reference) gives None for its values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from palmares_desktop.core.pet.threshold import (
    PetToolError,
    PetVolume,
    Region,
    liver_reference,
    threshold_in_region,
)
from palmares_desktop.core.plugins import PluginError, VolumeInput, parameter
from palmares_desktop.core.segmentation.geometry import Grid

#: feature prefix -> the core rule
RULES = {"suv2_5": "suv2.5", "suv4_0": "suv4.0", "pct41": "41%", "pct50": "50%", "percist": "percist"}
PER_RULE = ("threshold_suv", "voxels", "mtv_ml", "suv_max", "suv_mean", "tlg", "dice", "touches_region_edge")


@dataclass(frozen=True)
class PetThresholdParams:
    margin_mm: float = parameter(
        10.0,
        "Margin around the lesion",
        help="the threshold applies in a box this much larger than the drawn lesion on every side",
        minimum=0.0,
        maximum=100.0,
        unit="mm",
    )
    liver_at: str = parameter(
        "",
        "PERCIST liver sphere centre",
        help="x,y,z in mm; empty: the liver sphere the reader placed on this PET",
    )


def _liver(volume: VolumeInput, params: PetThresholdParams):
    if params.liver_at.strip():
        try:
            x, y, z = (float(v) for v in params.liver_at.split(","))
        except ValueError:
            raise PluginError(f"The liver centre {params.liver_at!r} is not x,y,z in mm.") from None
        return (x, y, z)
    centre = volume.context.get("liver_centre_mm")
    return tuple(centre) if centre is not None else None


def threshold_metrics(volume: VolumeInput, params: PetThresholdParams | None = None) -> dict:
    """The `pet_thresholds` family of one lesion (see the module doc)."""
    params = params or PetThresholdParams()
    if volume.modality != "PT":
        raise PluginError(
            f"PET threshold metrics need a PET image, not {volume.modality or 'an unknown'} one."
        )
    if volume.mask is None or not np.any(volume.mask):
        raise PluginError("The lesion mask is empty: there is no lesion to measure.")
    suv = np.asarray(volume.image, dtype=np.float32)
    mask = np.asarray(volume.mask, dtype=bool)
    grid = Grid(tuple(int(n) for n in suv.shape[::-1]), volume.spacing, volume.origin, volume.direction)
    pet = PetVolume(suv, grid, volume.context.get("sul_ratio"))

    hottest = np.unravel_index(int(np.argmax(np.where(mask, suv, -np.inf))), suv.shape)
    where = np.argwhere(mask)
    lo, hi = where.min(axis=0), where.max(axis=0)
    extent_mm = float(np.max((hi - lo + 1) * np.asarray(volume.spacing[::-1], dtype=float)))
    region = Region(pet.point_of((lo + hi) / 2.0), extent_mm + 2 * params.margin_mm, "box")
    seed_mm = pet.point_of(hottest)

    out: dict = {
        "lesion_voxels": int(mask.sum()),
        "lesion_suv_max": float(suv[hottest]),
        "region_size_mm": region.size_mm,
    }
    reference, liver = None, _liver(volume, params)
    if liver is not None:
        try:
            reference = liver_reference(pet, liver)
            out["percist_liver_suv_mean"] = reference.suv_mean
        except PetToolError:
            reference = None
    for key, rule in RULES.items():
        try:
            result = threshold_in_region(pet, region, rule, reference, seed_mm=seed_mm)
        except PetToolError:
            out.update({f"{key}_{name}": None for name in PER_RULE})
            continue
        m = result.metrics
        overlap = int(np.logical_and(result.mask, mask).sum())
        out.update(
            {
                f"{key}_threshold_suv": result.threshold_suv,
                f"{key}_voxels": m.voxel_count,
                f"{key}_mtv_ml": m.mtv_ml,
                f"{key}_suv_max": m.suv_max,
                f"{key}_suv_mean": m.suv_mean,
                f"{key}_tlg": m.tlg,
                f"{key}_dice": 2.0 * overlap / (m.voxel_count + int(mask.sum())),
                f"{key}_touches_region_edge": int(bool(result.parameters["touches_region_edge"])),
            }
        )
    return out

"""The numbers of the outline being edited, after every stroke: volume, HU mean/SD on a CT, SUVmax,
SUVmean, SUVpeak, MTV and TLG on a PET (core/pet/metrics.py's own definitions).

They are computed on the mask's bounding box plus the SUVpeak sphere's radius (the peak sphere may
reach beyond the lesion), not on the whole volume, so that they follow a stroke within tens of
milliseconds on a 512x512x300 CT. The arrays are the room's display-order arrays of one series
(the mask and the image share the series' placement); `scale_zyx` is its voxel size in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from palmares_desktop.core.pet.metrics import PEAK_RADIUS_MM, PetLesionMetrics, ct_hu_stats, lesion_metrics


@dataclass(frozen=True)
class LiveNumbers:
    voxels: int
    volume_ml: float
    hu_mean: float | None = None
    hu_sd: float | None = None
    pet: PetLesionMetrics | None = None

    def sentence(self, pet_unit: str = "SUVbw") -> str:
        if self.voxels == 0:
            return "Now: empty outline."
        text = f"Now: {self.volume_ml:.2f} mL"
        if self.hu_mean is not None:
            text += f", HU {self.hu_mean:.0f} ± {self.hu_sd:.0f}"
        if self.pet is not None:
            unit = "SUV" if pet_unit == "SUVbw" else pet_unit
            m = self.pet
            text += (
                f", {unit}max {m.suv_max:.2f}, {unit}mean {m.suv_mean:.2f}, {unit}peak {m.suv_peak:.2f}, "
                f"MTV {m.mtv_ml:.2f} mL, TLG {m.tlg:.1f}"
            )
            if m.smaller_than_peak_sphere:
                text += " (smaller than the 1 mL peak sphere)"
        return text + "."


def live_numbers(
    mask: np.ndarray, image: np.ndarray | None, scale_zyx: Sequence[float], modality: str
) -> LiveNumbers:
    """`mask` (nonzero = the lesion) and `image` (HU or SUV, same shape) in display order."""
    voxel_ml = float(np.prod(scale_zyx)) / 1000.0
    box = _box(np.asarray(mask), scale_zyx, margin_mm=PEAK_RADIUS_MM if modality == "PT" else 0.0)
    if box is None:
        return LiveNumbers(0, 0.0)
    inside = np.asarray(mask[box]) != 0
    count = int(np.count_nonzero(inside))
    if image is None or np.shape(image) != np.shape(mask):
        return LiveNumbers(count, count * voxel_ml)
    values = np.asarray(image[box])
    if modality == "PT":
        metrics = lesion_metrics(values, inside, tuple(scale_zyx)[::-1])
        return LiveNumbers(count, count * voxel_ml, pet=metrics)
    stats = ct_hu_stats(values, inside)
    return LiveNumbers(count, count * voxel_ml, stats["hu_mean"], stats["hu_sd"])


def _box(mask: np.ndarray, scale_zyx: Sequence[float], margin_mm: float) -> tuple[slice, ...] | None:
    """The mask's bounding box grown by `margin_mm` on each side (clipped), or None when empty. One
    pass over the whole array (its slices), then only over the slices the lesion is on."""
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if not len(slices):
        return None
    block = mask[slices[0] : slices[-1] + 1]
    hits = (slices, np.flatnonzero(block.any(axis=(0, 2))), np.flatnonzero(block.any(axis=(0, 1))))
    box = []
    for axis, (hit, step) in enumerate(zip(hits, scale_zyx, strict=True)):
        pad = int(np.ceil(margin_mm / float(step))) if margin_mm else 0
        box.append(slice(max(int(hit[0]) - pad, 0), min(int(hit[-1]) + 1 + pad, mask.shape[axis])))
    return tuple(box)

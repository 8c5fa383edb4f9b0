"""core/segmentation/live.py: the edited outline's numbers on its box equal the whole-volume ones."""

from __future__ import annotations

import time

import numpy as np
import pytest

from palmares_desktop.core.pet.metrics import ct_hu_stats, lesion_metrics
from palmares_desktop.core.segmentation.live import live_numbers


def _phantom(shape=(60, 80, 90), seed=3):
    rng = np.random.default_rng(seed)
    image = rng.normal(1.0, 0.2, shape).astype(np.float32)
    z, y, x = np.indices(shape)
    lesion = (z - 30) ** 2 / 16 + (y - 40) ** 2 / 36 + (x - 20) ** 2 / 25 <= 1.0
    image[lesion] += 6.0 + rng.normal(0, 1.0, int(lesion.sum()))
    image[31, 40, 26] = 14.0  # a hot voxel just outside the lesion: inside the peak sphere, not the mask
    return image, lesion


def test_pet_numbers_on_the_box_equal_the_whole_volume_metrics():
    suv, lesion = _phantom()
    scale = (2.0, 2.5, 2.5)  # z, y, x mm
    live = live_numbers(lesion.astype(np.uint8), suv, scale, "PT")
    whole = lesion_metrics(suv, lesion, scale[::-1])
    assert live.voxels == whole.voxel_count and live.volume_ml == pytest.approx(whole.mtv_ml)
    for name in ("suv_max", "suv_mean", "suv_peak_local", "suv_peak_global", "tlg"):
        assert getattr(live.pet, name) == pytest.approx(getattr(whole, name), rel=1e-9), name
    assert "SUVmax" in live.sentence() and "MTV" in live.sentence()


def test_ct_numbers_and_an_empty_outline():
    hu, lesion = _phantom()
    live = live_numbers(lesion, hu * 40, (1.0, 0.8, 0.8), "CT")
    stats = ct_hu_stats(hu * 40, lesion)
    assert live.hu_mean == pytest.approx(stats["hu_mean"]) and live.hu_sd == pytest.approx(stats["hu_sd"])
    assert live.volume_ml == pytest.approx(lesion.sum() * 0.64 / 1000)
    assert live_numbers(np.zeros_like(lesion), hu, (1, 1, 1), "CT").sentence() == "Now: empty outline."
    assert live_numbers(lesion, None, (1, 1, 1), "CT").hu_mean is None  # no image: the volume only


def test_a_small_lesion_on_a_full_size_ct():
    """The issue's 512x512x300 CT: the box, not the volume, is measured (the time is printed)."""
    mask = np.zeros((300, 512, 512), np.uint8)
    mask[140:160, 200:230, 300:330] = 1
    image = np.zeros(mask.shape, np.float32)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        live = live_numbers(mask, image, (1.0, 0.98, 0.98), "CT")
        best = min(best, time.perf_counter() - start)
    assert live.voxels == 20 * 30 * 30
    print(f"\nlive numbers on 512x512x300: {best * 1000:.0f} ms")

import numpy as np

from palmares_desktop.core.pet.display import uncalibrated_display_max


def test_uncalibrated_pet_display_range_ignores_a_few_hot_voxels():
    values = np.full(10_000, 5000.0)  # Bq/mL background
    values[:10] = 1e6  # 0.1% of voxels very hot
    assert uncalibrated_display_max(values) == 5000.0
    assert uncalibrated_display_max(np.zeros(10)) == 1.0  # an empty image still gets a usable scale

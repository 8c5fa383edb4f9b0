import numpy as np

from palmares_desktop.core.pet.display import uncalibrated_display_max


def test_uncalibrated_pet_display_range_ignores_a_few_hot_voxels():
    values = np.full(10_000, 5000.0)  # Bq/mL background
    values[:10] = 1e6  # 0.1% of voxels very hot
    assert uncalibrated_display_max(values) == 5000.0
    assert uncalibrated_display_max(np.zeros(10)) == 1.0  # an empty image still gets a usable scale


def test_fused_colour_stays_visible_over_bone_where_additive_blending_is_white():
    from palmares_desktop.core.pet.display import (
        DEFAULT_FUSION_OPACITY,
        DEFAULT_SUV_MAX,
        FUSION_TOP,
        fused_pixel,
        fusion_positions,
        fusion_table,
    )

    positions, samples = fusion_positions()
    assert samples[-1] == FUSION_TOP == 0.8
    # inferno at 0.8 of its range is (251, 164, 10): a saturated orange-yellow, not its white-ish top.
    base = np.outer(samples / FUSION_TOP, np.array([251, 164, 10]) / 255.0)
    table = fusion_table(base, positions)
    assert table[0, 3] == 0.0 and table[-1, 3] == 1.0  # SUV 0 leaves the CT untouched
    bone = np.ones(3)  # HU 480 in the abdomen window (400/50): white
    fused = fused_pixel(bone, 9.22, DEFAULT_SUV_MAX, table, DEFAULT_FUSION_OPACITY)  # the demo lesion
    additive = np.minimum(bone + DEFAULT_FUSION_OPACITY * table[-1, :3], 1.0)
    assert np.abs(additive - bone).max() == 0.0  # additive: white on white
    # Overlay: blue falls from 255 to 255 * (1 - 0.6 * (1 - 10/255)) = 108, a 147 grey-level margin.
    np.testing.assert_allclose(fused * 255, [252.6, 200.4, 108.0], atol=0.1)
    assert 255 * np.abs(fused - bone).max() > 140
    # Cold tissue (SUV 0.5 of 6, under the fade-in) barely tints the CT.
    soft = np.full(3, 0.5)
    assert np.abs(fused_pixel(soft, 0.5, DEFAULT_SUV_MAX, table, DEFAULT_FUSION_OPACITY) - soft).max() < 0.1

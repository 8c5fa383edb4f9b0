"""Reader agreement numbers against independent computations: SimpleITK's overlap and Hausdorff
filters, a brute-force surface distance, and pingouin's ICC on the same table."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

from palmares_desktop.core.agreement import AgreementError, feature_iccs, mask_agreement, robust_features
from palmares_desktop.core.agreement.overlap import surface_points_mm

SPACING = (2.5, 0.8, 0.8)  # z, y, x in mm, as the arrays are ordered


def sphere(shape, centre, radius_mm, spacing=SPACING):
    grid = np.indices(shape).astype(float)
    d2 = sum(((grid[i] - centre[i]) * spacing[i]) ** 2 for i in range(3))
    return (d2 <= radius_mm**2).astype(np.uint8)


def to_sitk(mask, spacing=SPACING):
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(reversed(spacing)))  # SimpleITK spacing is x, y, z
    return image


@pytest.fixture(scope="module")
def two_readers():
    a = sphere((24, 60, 60), (12, 30, 30), 12.0)
    b = sphere((24, 60, 60), (12, 33, 28), 10.0)  # a smaller, shifted outline of the same lesion
    return a, b


def test_dice_and_jaccard_equal_simpleitk(two_readers):
    a, b = two_readers
    ours = mask_agreement(a, b, SPACING)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(to_sitk(a), to_sitk(b))
    assert ours.dice == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
    assert ours.jaccard == pytest.approx(overlap.GetJaccardCoefficient(), abs=1e-12)
    assert 0.5 < ours.dice < 0.95


def test_hausdorff_max_equals_simpleitk_and_hd95_equals_brute_force(two_readers):
    a, b = two_readers
    ours = mask_agreement(a, b, SPACING)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(to_sitk(a), to_sitk(b))
    assert ours.hd_max_mm == pytest.approx(hausdorff.GetHausdorffDistance(), abs=1e-6)
    pa, pb = surface_points_mm(a, SPACING), surface_points_mm(b, SPACING)
    ab = cKDTree(pb).query(pa)[0]
    ba = cKDTree(pa).query(pb)[0]
    expected = max(np.percentile(ab, 95), np.percentile(ba, 95))  # directed maxima, not pooled
    assert ours.hd95_mm == pytest.approx(expected, abs=1e-9)
    assert ours.hd95_mm <= ours.hd_max_mm
    pooled = np.percentile(np.concatenate([ab, ba]), 95)
    assert ours.hd95_mm >= pooled


def test_volume_difference_in_ml(two_readers):
    a, b = two_readers
    ours = mask_agreement(a, b, SPACING)
    voxel_ml = 2.5 * 0.8 * 0.8 / 1000
    assert ours.volume_a_ml == pytest.approx(a.sum() * voxel_ml)
    assert ours.volume_difference_ml == pytest.approx((int(b.sum()) - int(a.sum())) * voxel_ml)
    assert ours.volume_difference_relative < 0


def test_identical_empty_and_one_empty_cases():
    a = sphere((10, 20, 20), (5, 10, 10), 4.0)
    empty = np.zeros_like(a)
    same = mask_agreement(a, a, SPACING)
    assert (same.dice, same.jaccard, same.hd95_mm, same.hd_max_mm) == (1.0, 1.0, 0.0, 0.0)
    both = mask_agreement(empty, empty, SPACING)
    assert (both.dice, both.jaccard, both.hd95_mm) == (1.0, 1.0, 0.0)
    assert both.volume_difference_relative is None
    one = mask_agreement(a, empty, SPACING)
    assert (one.dice, one.jaccard, one.hd95_mm) == (0.0, 0.0, None)


def test_masks_on_different_grids_are_refused_in_words():
    with pytest.raises(AgreementError, match="different grids"):
        mask_agreement(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), SPACING)


def _table(n=40, k=3, seed=1):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, 1)) * 3
    robust = truth + rng.normal(size=(n, k)) * 0.3 + np.array([0.0, 0.2, 0.4])[:k]
    fragile = truth + rng.normal(size=(n, k)) * 4 + np.array([0.0, 2.0, 4.0])[:k]
    return np.stack([robust, fragile])


@pytest.mark.parametrize("kind, pingouin_type", [("ICC(2,1)", "ICC(A,1)"), ("ICC(3,1)", "ICC(C,1)")])
def test_icc_equals_pingouin(kind, pingouin_type):
    pd = pytest.importorskip("pandas")
    pg = pytest.importorskip("pingouin")
    values = _table()
    ours = feature_iccs(values, ["robust", "fragile"], kind)
    for f, result in enumerate(ours):
        table = pd.DataFrame(
            [(t, r, values[f, t, r]) for t in range(values.shape[1]) for r in range(values.shape[2])],
            columns=["lesion", "reader", "value"],
        )
        ref = pg.intraclass_corr(table, "lesion", "reader", "value").set_index("Type").loc[pingouin_type]
        assert result.icc == pytest.approx(ref["ICC"], abs=1e-9)
        low, high = ref["CI95"]  # pingouin rounds its interval to 2 decimals
        assert result.ci_low == pytest.approx(low, abs=0.006)
        assert result.ci_high == pytest.approx(high, abs=0.006)
    assert ours[0].band == "excellent" and ours[1].band in ("poor", "moderate")
    assert robust_features(ours) == ["robust"]


def test_icc_missing_values_and_constant_feature():
    values = _table()
    with_gap = values.copy()
    with_gap[0, 3, 1] = np.nan
    constant = np.ones((1, values.shape[1], 3))
    results = feature_iccs(np.concatenate([with_gap, constant]), ["gap", "fragile", "const"])
    assert results[0].n_targets == values.shape[1] - 1
    full = feature_iccs(np.delete(values, 3, axis=1)[:1], ["gap"])[0]
    assert results[0].icc == pytest.approx(full.icc)
    assert np.isnan(results[2].icc) and "constant" in results[2].note
    assert results[2].band == "undefined"
    assert "const" not in robust_features(results, 0.0)


def test_icc_needs_two_readers():
    with pytest.raises(AgreementError, match="two readers"):
        feature_iccs(np.zeros((1, 5, 1)), ["f"])


def test_bland_altman_bias_and_limits_by_hand_and_missing_pairs_left_out():
    from palmares_desktop.core.agreement import bland_altman

    a = [10.0, 20.0, 30.0, None, 40.0]
    b = [12.0, 19.0, 33.0, 5.0, float("nan")]
    result = bland_altman("volume_ml", a, b)
    diffs = np.array([2.0, -1.0, 3.0])
    assert result.n == 3 and result.differences == (2.0, -1.0, 3.0) and result.means == (11.0, 19.5, 31.5)
    assert result.bias == pytest.approx(diffs.mean())
    assert result.sd == pytest.approx(np.std(diffs, ddof=1))
    assert result.upper_loa == pytest.approx(diffs.mean() + 1.96 * np.std(diffs, ddof=1))
    assert "bias 1.33, 95% limits of agreement" in result.sentence()
    one = bland_altman("suv_mean", [1.0], [1.5])
    assert one.sd is None and "limits need two or more" in one.sentence()
    assert bland_altman("x", [], []).sentence() == "x: no pair of readings to compare."

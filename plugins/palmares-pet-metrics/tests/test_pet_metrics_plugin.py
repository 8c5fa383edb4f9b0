"""The pet_thresholds family: by hand on a synthetic sphere, and on the real IBSI STS_001 PET
(Units GML: the pixels are SUVbw), checked against an independent connected-component count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from palmares_pet_metrics.metrics import PER_RULE, RULES, PetThresholdParams, threshold_metrics
from palmares_pet_metrics.plugin import palmares_feature_extractors
from scipy import ndimage

from palmares_desktop.core.plugins import VolumeInput, describe_parameters, make_parameters


def _ball(shape, centre, radius):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def test_every_rule_recovers_a_sphere_by_hand():
    shape = (50, 50, 80)
    lesion = _ball(shape, (25, 25, 25), 6)  # 12 mm radius at 2 mm voxels
    suv = np.where(lesion, 8.0, 1.0)
    suv[:, :, 50:] = 2.0  # a uniform "liver": PERCIST threshold 1.5 x 2.0 + 2 x 0 = 3.0
    volume = VolumeInput(suv, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), modality="PT", mask=lesion)
    params = make_parameters(PetThresholdParams, {"liver_at": "130,50,50", "margin_mm": "8"})
    out = threshold_metrics(volume, params)
    n = int(lesion.sum())
    assert out["lesion_voxels"] == n and out["lesion_suv_max"] == 8.0
    assert out["region_size_mm"] == pytest.approx(26 + 16)  # 13 voxels of 2 mm, plus 8 mm each side
    assert out["percist_liver_suv_mean"] == pytest.approx(2.0)
    expected = {"suv2_5": 2.5, "suv4_0": 4.0, "pct41": 0.41 * 8, "pct50": 4.0, "percist": 3.0}
    for key, threshold in expected.items():
        assert out[f"{key}_threshold_suv"] == pytest.approx(threshold), key
        assert out[f"{key}_voxels"] == n and out[f"{key}_dice"] == 1.0, key
        assert out[f"{key}_mtv_ml"] == pytest.approx(n * 0.008)
        assert out[f"{key}_tlg"] == pytest.approx(8.0 * n * 0.008)
        assert out[f"{key}_suv_mean"] == 8.0 and out[f"{key}_touches_region_edge"] == 0
    assert len(out) == 4 + len(RULES) * len(PER_RULE)
    assert abs(out["suv2_5_mtv_ml"] - 4 / 3 * math.pi * 1.2**3) < 0.4  # 7.24 mL sphere, voxelised

    # No liver reference: PERCIST cannot apply, the other rules still do.
    no_liver = threshold_metrics(volume)
    assert all(no_liver[f"percist_{name}"] is None for name in PER_RULE)
    assert no_liver["suv4_0_voxels"] == n


def test_the_real_sts_001_pet(shared_data):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(shared_data / "petct_sts_001" / "PET" / "image")))
    image = reader.Execute()
    suv = sitk.GetArrayFromImage(image).astype(np.float32)  # GML: already SUVbw (factor 1.0)
    # The sarcoma: the hottest voxel away from the crop's faces (the hottest of all sits on the last slice).
    inner = np.full(suv.shape, -np.inf, dtype=np.float32)
    inner[5:-5, 5:-5, 5:-5] = suv[5:-5, 5:-5, 5:-5]
    hottest = np.unravel_index(int(np.argmax(inner)), suv.shape)
    # The "drawn" lesion: the 26-connected component of SUV >= 3 holding the hottest voxel.
    labels, _ = ndimage.label(suv >= 3.0, structure=np.ones((3, 3, 3)))
    drawn = labels == labels[hottest]
    volume = VolumeInput(
        suv,
        image.GetSpacing(),
        image.GetOrigin(),
        image.GetDirection(),
        modality="PT",
        mask=drawn,
    )
    out = threshold_metrics(volume, PetThresholdParams(margin_mm=20.0))
    assert out["lesion_voxels"] == 2246 and out["lesion_suv_max"] == pytest.approx(7.9107, abs=1e-4)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000
    for key in ("suv2_5", "suv4_0", "pct41", "pct50"):
        assert out[f"{key}_suv_max"] == pytest.approx(out["lesion_suv_max"])
        assert out[f"{key}_mtv_ml"] == pytest.approx(out[f"{key}_voxels"] * voxel_ml)
        assert out[f"{key}_tlg"] == pytest.approx(out[f"{key}_mtv_ml"] * out[f"{key}_suv_mean"], rel=1e-6)
        assert out[f"{key}_suv_mean"] >= out[f"{key}_threshold_suv"]
    assert out["suv4_0_voxels"] <= out["suv2_5_voxels"] and out["pct50_voxels"] <= out["pct41_voxels"]
    # Independent check: the fixed-SUV results stay inside their box, so each is the whole-image
    # 26-connected component of SUV >= level around the hottest voxel.
    for key, level, count in (("suv2_5", 2.5, 3305), ("suv4_0", 4.0, 679)):
        labels, _ = ndimage.label(suv >= level, structure=np.ones((3, 3, 3)))
        assert out[f"{key}_touches_region_edge"] == 0
        assert out[f"{key}_voxels"] == int((labels == labels[hottest]).sum()) == count, key
    assert out["suv2_5_mtv_ml"] == pytest.approx(237.47, abs=0.01)  # a large real sarcoma
    assert out["pct41_threshold_suv"] == pytest.approx(0.41 * out["lesion_suv_max"])
    assert out["pct41_dice"] > 0.9 > out["pct50_dice"]
    assert out["percist_voxels"] is None  # no liver in a 5 cm crop


def test_the_hook_declares_one_pet_family_with_a_typed_form():
    (extractor,) = palmares_feature_extractors()
    assert extractor.name == "pet_thresholds" and extractor.modalities == ("PT",)
    fields = describe_parameters(extractor.parameters)
    assert [(f.name, f.type, f.default, f.unit) for f in fields] == [
        ("margin_mm", "float", 10.0, "mm"),
        ("liver_at", "str", "", ""),
    ]

"""PET lesion metrics on synthetic spheres, a peak case where local and global differ, hand-checkable
subject totals, RECIST diameters, and the oncoray SUV DROs (SUVmax 4.00 inside their masks)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from palmares_desktop.core.ct.recist import recist_diameters
from palmares_desktop.core.pet.metrics import (
    PEAK_RADIUS_MM,
    dmax_mm,
    lesion_metrics,
    sphere_offsets,
    subject_totals,
)
from palmares_desktop.core.pet.suv import compute_suv


def _ball(shape, centre, radius_vox):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius_vox**2


def test_sphere_of_known_volume_and_uptake():
    spacing = (2.0, 2.0, 2.0)
    radius_mm = 15.0
    mask = _ball((40, 40, 40), (20, 20, 20), radius_mm / 2.0)
    suv = np.where(mask, 6.0, 1.0)
    m = lesion_metrics(suv, mask, spacing)
    exact_ml = 4 / 3 * math.pi * radius_mm**3 / 1000.0
    # voxel tolerance: the shell of voxels cut by the sphere surface
    shell_ml = 4 * math.pi * radius_mm**2 * 2.0 / 1000.0
    assert abs(m.mtv_ml - exact_ml) < shell_ml / 2
    assert m.suv_mean == 6.0 and m.suv_max == 6.0 and m.suv_sd == 0.0
    assert m.tlg == pytest.approx(6.0 * m.mtv_ml)
    assert m.suv_peak_local == pytest.approx(6.0)  # the 1 mL sphere is well inside the lesion
    assert not m.smaller_than_peak_sphere
    assert m.voxel_count == int(mask.sum())


def test_peak_sphere_is_one_ml_in_anisotropic_mm():
    offsets = sphere_offsets((1.0, 1.0, 1.0))
    assert len(offsets) == pytest.approx(1000, rel=0.05)  # ~1 mL of 1 mm³ voxels
    aniso = sphere_offsets((1.0, 1.0, 3.0))
    assert abs(aniso[:, 0]).max() == math.floor(PEAK_RADIUS_MM / 3.0)
    assert abs(aniso[:, 2]).max() == math.floor(PEAK_RADIUS_MM / 1.0)


def test_local_and_global_peak_differ_when_the_hottest_voxel_is_isolated():
    # one hot voxel (SUV 20) at the lesion edge, and a broad plateau of SUV 8 elsewhere in the lesion
    spacing = (2.0, 2.0, 2.0)
    mask = np.zeros((30, 30, 30), bool)
    mask[5:25, 5:25, 5:25] = True
    suv = np.ones(mask.shape)
    suv[10:20, 10:20, 10:20] = 8.0
    suv[5, 5, 5] = 20.0
    m = lesion_metrics(suv, mask, spacing)
    assert m.suv_max == 20.0
    assert m.suv_peak_global == pytest.approx(8.0)  # sphere fully in the plateau
    assert m.suv_peak_local < 3.0  # the sphere around the corner voxel is mostly SUV 1
    assert m.suv_peak == m.suv_peak_local and "local" in m.peak_variant


def test_small_lesion_is_flagged_and_sul_scales():
    mask = np.zeros((10, 10, 10), bool)
    mask[5, 5, 5] = True
    suv = np.full(mask.shape, 2.0)
    m = lesion_metrics(suv, mask, (4.0, 4.0, 4.0), sul_ratio=0.6)
    assert m.smaller_than_peak_sphere
    assert m.sul_peak == pytest.approx(m.suv_peak * 0.6)


def test_dmax_and_totals_hand_checkable():
    lesions = [
        {
            "name": "a",
            "organ": "liver",
            "mtv_ml": 2.0,
            "tlg": 10.0,
            "centroid_mm": (0, 0, 0),
            "sul_peak": 3.0,
        },
        {
            "name": "b",
            "organ": "liver",
            "mtv_ml": 3.0,
            "tlg": 6.0,
            "centroid_mm": (30, 40, 0),
            "sul_peak": 5.0,
        },
        {"name": "c", "organ": "bone", "mtv_ml": 1.5, "tlg": 4.5, "centroid_mm": (0, 0, 12), "sul_peak": 4.0},
    ]
    lesions[0].update(recist_status="target", recist_long_axis_mm=22.0)
    lesions[1].update(recist_status="target", recist_long_axis_mm=15.0)
    totals = subject_totals(lesions)
    assert totals["total_mtv_ml"] == 6.5 and totals["total_tlg"] == 20.5
    assert totals["lesion_count"] == 3 and totals["lesions_per_organ"] == {"liver": 2, "bone": 1}
    assert totals["dmax_mm"] == pytest.approx(math.sqrt(30**2 + 40**2 + 12**2))
    assert totals["recist_sum_mm"] == 37.0
    assert totals["percist_target"] == {"name": "b", "sul_peak": 5.0}
    assert dmax_mm([(1, 2, 3)]) == 0.0


def test_recist_diameters_of_an_axial_ellipse():
    spacing = (0.5, 0.5, 2.0)
    z, y, x = np.indices((5, 120, 120))
    # semi-axes 20 mm along x and 8 mm along y on the middle slice
    mask = ((x - 60) * 0.5 / 20.0) ** 2 + ((y - 60) * 0.5 / 8.0) ** 2 <= 1.0
    mask &= z == 2
    d = recist_diameters(mask, spacing)
    assert abs(d["recist_long_axis_mm"] - 40.0) <= 0.5
    assert abs(d["recist_short_axis_mm"] - 16.0) <= 0.5
    assert d["recist_slice"] == 2


def _dro_suv(shared_data: Path, dro_id: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    folder = shared_data / "suv_dro_oncoray/DRO" / dro_id
    datasets = [pydicom.dcmread(p) for p in sorted((folder / "PT").glob("*.dcm"))]
    factors = compute_suv(datasets).suvbw_factors
    normal = np.cross(*np.split(np.array(datasets[0].ImageOrientationPatient, float), 2))
    ordered = sorted(datasets, key=lambda ds: float(normal @ np.array(ds.ImagePositionPatient, float)))
    planes = [
        (ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)) * factors[ds.SOPInstanceUID]
        for ds in ordered
    ]
    image = sitk.GetImageFromArray(np.stack(planes).astype(np.float64))
    row_mm, col_mm = (float(v) for v in ordered[0].PixelSpacing)
    gap = float(np.mean(np.diff([normal @ np.array(ds.ImagePositionPatient, float) for ds in ordered])))
    image.SetSpacing((col_mm, row_mm, gap))
    image.SetOrigin(tuple(float(v) for v in ordered[0].ImagePositionPatient))
    orientation = np.array(ordered[0].ImageOrientationPatient, float)
    image.SetDirection(tuple(np.column_stack([orientation[:3], orientation[3:], normal]).ravel()))
    mask = sitk.Resample(
        sitk.ReadImage(str(folder / "mask/DRO_mask.nii.gz")),
        image,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
    )
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(mask) > 0, image.GetSpacing()


@pytest.mark.parametrize("dro_id", ["DRO_0_0", "DRO_1_0", "DRO_3_3", "DRO_5_0"])
def test_suv_dro_metrics(shared_data, dro_id):
    suv, mask, spacing = _dro_suv(shared_data, dro_id)
    m = lesion_metrics(suv, mask, spacing)
    values = suv[mask]
    assert round(m.suv_max, 2) == 4.00  # PROVENANCE.md: SUVmax 4.00 (min 0.20, median 1.00) in the mask
    assert round(float(values.min()), 2) == 0.20 and round(float(np.median(values)), 2) == 1.00
    assert m.suv_mean == pytest.approx(float(values.mean()), rel=1e-12)
    assert m.mtv_ml == pytest.approx(mask.sum() * np.prod(spacing) / 1000.0)
    assert m.suv_peak_global >= m.suv_peak_local - 1e-9

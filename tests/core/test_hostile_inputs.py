"""Hostile inputs answered in one sentence, fast, leaving nothing behind (issue 11): label 0,
non-finite and out-of-range labels, a resampling that would explode, FIFOs and links in a folder."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from series_fixture import import_ct  # noqa: E402

from palmares_desktop.core.dicom.discovery import scan_folder  # noqa: E402
from palmares_desktop.core.radiomics.errors import RadiomicsError  # noqa: E402
from palmares_desktop.core.radiomics.extract import (  # noqa: E402
    MAX_RESAMPLED_VOXELS,
    extract_features,
    resampled_voxels,
)
from palmares_desktop.core.radiomics.params import parse_params  # noqa: E402
from palmares_desktop.core.segmentation.labelmaps import SegmentationError, add_segmentation  # noqa: E402

SUBJECT = "IT03-0001"


@pytest.fixture
def ct3(store, shared_data):
    folder = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, folder / "ct", SUBJECT)
    return folder


def _refused(store, mask, match: str, **kwargs) -> str:
    """The sentence `add_segmentation` refused with, after checking it came fast and left nothing."""
    started = time.perf_counter()
    with pytest.raises(SegmentationError, match=match) as refused:
        add_segmentation(store, SUBJECT, "CT", mask, **kwargs)
    assert time.perf_counter() - started < 10
    assert store.rows("segmentations") == [] and list(store.path("masks").iterdir()) == []
    return str(refused.value)


def test_label_zero_and_out_of_range_labels_are_refused(store, ct3):
    seg = ct3 / "seg" / "liver.dcm"
    assert _refused(store, seg, r"^Label 0 is the background", label=0).startswith("Label 0")
    huge = _refused(
        store,
        seg,
        r"^Label 1099511627776 is out of range: labels are whole numbers from 1 to 2147483647\.$",
        label=2**40,
    )
    assert "empty" not in huge  # the adversarial run saw "The mask is empty" here
    assert "out of range" in _refused(store, seg, r"^Label -3 is out of range", label=-3)


def test_non_finite_and_huge_mask_values_are_refused(store, ct3, tmp_path):
    liver = sitk.ReadImage(str(ct3 / "seg" / "liver_seg.nrrd"))  # dcmqi's source of liver.dcm
    values = sitk.GetArrayFromImage(liver).astype(np.float32)
    assert int(values.sum()) == 107098  # the real liver, on the real grid

    for bad, word in ((np.inf, r"\+inf"), (-np.inf, "-inf"), (np.nan, "NaN")):
        planted = values.copy()
        planted[1, 10, 10] = bad
        path = tmp_path / "planted.nrrd"
        image = sitk.GetImageFromArray(planted)
        image.CopyInformation(liver)
        sitk.WriteImage(image, str(path))
        _refused(store, path, rf"^planted\.nrrd holds 1 voxel\(s\) that are not numbers \({word}\)")

    for dtype in (np.float64, np.int64):
        huge = (values > 0).astype(dtype) * 2**40
        path = tmp_path / f"huge_{np.dtype(dtype).name}.nrrd"
        image = sitk.GetImageFromArray(huge)
        image.CopyInformation(liver)
        sitk.WriteImage(image, str(path))
        # Not "the mask is empty" or "label 1 is not in it": the file is not an integer label map.
        _refused(
            store,
            path,
            rf"^{path.name} holds the value 1099511627776, outside the range of labels .* not an integer label map\.$",
            label=1,
        )


def test_an_exploding_resampling_is_refused_before_pyradiomics_runs(shared_data):
    lung = shared_data / "ibsi_ct_lung_pat1" / "nifti"
    image = sitk.ReadImage(str(lung / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(lung / "mask" / "mask.nii.gz"))
    from radiomics import imageoperations

    # The estimate is pyradiomics' own resampled size (bounding box + padDistance), exactly.
    two_mm = parse_params("setting:\n  resampledPixelSpacing: [2, 2, 2]\n", "2mm.yaml")
    _, resampled = imageoperations.resampleImage(
        image, mask, resampledPixelSpacing=[2, 2, 2], label=1, padDistance=5
    )
    assert resampled_voxels(mask, 1, two_mm) == int(np.prod(resampled.GetSize())) == 189771

    tiny = parse_params("setting:\n  resampledPixelSpacing: [0.05, 0.05, 0.05]\n", "tiny.yaml")
    started = time.perf_counter()
    with pytest.raises(RadiomicsError) as refused:
        extract_features(image, mask, tiny)
    assert time.perf_counter() - started < 10
    assert str(refused.value) == (
        "Resampling to 0.05 x 0.05 x 0.05 mm (resampledPixelSpacing of tiny.yaml) would make the region "
        f"(label 1) about 6,013,476,942 voxels, more than the limit of {MAX_RESAMPLED_VOXELS:,}: use a "
        "coarser spacing (the study presets resample to whole millimetres)."
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_links_fifos_and_devices_in_a_folder_are_listed_as_skipped(shared_data, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(shared_data / "ct_3slice_seg_dcmqi" / "ct", folder / "ct")
    (folder / "elsewhere").symlink_to(shared_data / "petct_sts_001", target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    os.mkfifo(folder / "pipe")
    (folder / "null").symlink_to("/dev/null")
    (folder / "gone").symlink_to(tmp_path / "no such file")

    started = time.perf_counter()
    result = scan_folder(folder)
    assert time.perf_counter() - started < 10  # the FIFO was not opened (it would block for ever)
    assert [(s.modality, s.n_instances, s.usable) for s in result.series] == [("CT", 3, True)]
    reasons = {Path(p).name: r for p, r in result.skipped}
    assert reasons == {
        "elsewhere": "link to a folder, not followed (it may lead outside the export, or in a loop)",
        "loop": "link to a folder, not followed (it may lead outside the export, or in a loop)",
        "pipe": "a named pipe (FIFO), not a file: not read",
        "null": "link to a device, not a file: not read",
        "gone": "broken link: its target does not exist",
    }


def test_the_single_case_extraction_refuses_the_same_masks(shared_data):
    lung = shared_data / "ibsi_ct_lung_pat1" / "nifti"
    image = sitk.ReadImage(str(lung / "image" / "phantom.nii.gz"))
    mask = sitk.ReadImage(str(lung / "mask" / "mask.nii.gz"))
    params = parse_params("setting:\n  resampledPixelSpacing: [2, 2, 2]\n", "2mm.yaml")
    with pytest.raises(RadiomicsError, match=r"^Label 0 is the background"):
        extract_features(image, mask, params, label=0)
    values = sitk.GetArrayFromImage(mask).astype(np.float64)
    for planted, match in ((np.inf, r"holds 1 voxel\(s\) that are not numbers \(\+inf\)"),
                           (2.0**40, r"holds the value 1099511627776, outside the range of labels")):  # fmt: skip
        bad = values.copy()
        bad[0, 0, 0] = planted
        hostile = sitk.GetImageFromArray(bad)
        hostile.CopyInformation(mask)
        with pytest.raises(RadiomicsError, match=rf"^The mask {match}"):
            extract_features(image, hostile, params)

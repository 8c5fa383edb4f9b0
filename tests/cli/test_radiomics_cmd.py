"""`palmares radiomics IMAGE MASK ...` on real files: JSON/CSV output, errors in words, the lock command."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner
from radiomics.featureextractor import RadiomicsFeatureExtractor

from palmares_desktop.cli.main import _register, main
from palmares_desktop.core.radiomics.extract import extract_features
from palmares_desktop.core.radiomics.params import load_params


@pytest.fixture(scope="module")
def lung(shared_data):
    folder = shared_data / "ibsi_ct_lung_pat1" / "nifti"
    return folder / "image" / "phantom.nii.gz", folder / "mask" / "mask.nii.gz"


@pytest.fixture(scope="module")
def phantom(shared_data):
    folder = shared_data / "ibsi_digital_phantom"
    return folder / "image" / "phantom.nii.gz", folder / "mask" / "mask.nii.gz"


def _run(*args):
    _register()
    return CliRunner().invoke(main, ["radiomics", *map(str, args)])


def test_json_is_pyradiomics_keys_with_numbers_plus_provenance(lung):
    image, mask = lung
    result = _run(image, mask, "--preset", "ct")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    expected = extract_features(sitk.ReadImage(str(image)), sitk.ReadImage(str(mask)), load_params("ct"))
    assert list(record) == [*expected.diagnostics, *expected.values, "provenance"]
    for key, value in expected.values.items():
        assert record[key] == value and isinstance(record[key], float), key
    assert record["original_shape_VoxelVolume"] == 360856.0
    assert record["diagnostics_Mask-original_VoxelNum"] == 125256
    assert record["provenance"]["params"]["sha256"] == load_params("ct").sha256
    assert record["provenance"]["image"]["sha256"] == expected.provenance["image"]["sha256"]


def test_options_first_explicit_extract_csv_and_out(phantom, tmp_path):
    image, mask = phantom
    params = tmp_path / "ibsi.yaml"
    params.write_text("setting:\n  binWidth: 1.0\n  minimumROIDimensions: 1\n")
    out = tmp_path / "features.csv"
    result = _run("--params", params, "--format", "csv", "--out", out, image, mask)
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.stderr and result.stdout == ""
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["key", "value"]
    table = dict(rows[1:])
    assert float(table["original_firstorder_Mean"]) == pytest.approx(2.1486486, abs=1e-7)
    assert float(table["original_shape_VoxelVolume"]) == 592.0
    assert table["provenance.params.name"] == "ibsi.yaml" and table["provenance.label"] == "1"
    assert json.loads(table["diagnostics_Image-original_Size"]) == [5, 4, 4]
    spelled = _run("extract", image, mask, "--params", params, "--format", "csv")
    assert (
        dict(list(csv.reader(io.StringIO(spelled.stdout)))[1:])["original_firstorder_Mean"]
        == table["original_firstorder_Mean"]
    )


def _write_mask(tmp_path, reference: str, array: np.ndarray, name="mask.nii.gz"):
    ref = sitk.ReadImage(str(reference))
    mask = sitk.GetImageFromArray(array.astype(np.uint8))
    mask.CopyInformation(ref)
    path = tmp_path / name
    sitk.WriteImage(mask, str(path))
    return path


def test_bad_inputs_exit_non_zero_with_a_sentence(lung, phantom, tmp_path):
    image, mask = lung
    cases = [
        ((image, mask, "--preset", "ct", "--label", "2"), "Label 2 is not present in the mask"),
        ((image, phantom[1], "--preset", "ct"), "The mask does not match the image: image size 204×201×60"),
        ((tmp_path / "none.nii.gz", mask, "--preset", "ct"), "none.nii.gz does not exist"),
    ]
    one = np.zeros((4, 4, 5))
    one[1, 1, 1] = 1
    cases.append(
        ((phantom[0], _write_mask(tmp_path, phantom[0], one), "--preset", "ct"), "is a single voxel")
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: -1\n")
    cases.append(((image, mask, "--params", bad), "The radiomics parameter file bad.yaml is not valid"))
    notes = tmp_path / "notes.nii"
    notes.write_text("hello")
    cases.append(((notes, mask, "--preset", "ct"), "Cannot read the image file notes.nii"))
    for args, words in cases:
        result = _run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert words in result.output and "Traceback" not in result.output, result.output


def test_pet_dicom_folder_with_the_pet_preset(shared_data):
    dro = shared_data / "suv_dro_oncoray" / "DRO" / "DRO_0_0"
    result = _run(dro / "PT", dro / "mask" / "DRO_mask.nii.gz", "--preset", "pet")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["original_firstorder_Maximum"] == pytest.approx(4.0, abs=1e-3)  # SUV, not Bq/mL
    assert record["provenance"]["params"]["name"] == "pet"


def test_usage_errors(phantom):
    image, mask = phantom
    assert "Choose the parameters" in _run(image, mask).output
    assert "either --preset or --params" in _run(image, mask, "--preset", "ct", "--params", "x.yaml").output
    assert _run().exit_code != 0
    assert "IMAGE MASK" in _run("--help").output


def test_lock_command_on_a_real_store(tmp_path, phantom):
    store = tmp_path / "store"
    from palmares_desktop.core.store import Store

    Store.open(store).close()
    result = _run("lock", "--store", store, "--modality", "ct", "--preset", "ct", "--mode", "refuse")
    assert result.exit_code == 0, result.output
    assert f"CT: ct (sha256 {load_params('ct').sha256})" in result.output and "mode: refuse" in result.output
    assert "PET: not locked" in result.output and "H&E: not locked" in result.output
    assert _run("lock", "--store", tmp_path / "nostore").exit_code == 1
    # Without --modality a lock or unlock is refused, not silently ignored.
    for args in (("--preset", "pet"), ("--unlock",)):
        refused = _run("lock", "--store", store, *args)
        assert refused.exit_code == 2 and "Say which modality" in refused.output
    assert "CT: ct (sha256" in _run("lock", "--store", store).output  # the CT lock is still there


def test_the_installed_command_end_to_end(phantom, tmp_path):
    """The real `palmares` process: numbers on stdout, and a plain error (no traceback) on stderr."""
    image, mask = phantom
    params = tmp_path / "p.yaml"
    params.write_text("setting:\n  binWidth: 1.0\n")
    entry = "from palmares_desktop.cli.main import cli; cli()"
    cmd = [sys.executable, "-c", entry, "radiomics", str(image), str(mask), "--params", str(params)]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["original_firstorder_Variance"] == pytest.approx(3.0454711, abs=1e-7)
    failed = subprocess.run([*cmd, "--label", "7"], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert failed.stderr.strip() == "Error: Label 7 is not present in the mask; the mask's labels are 1."


def test_an_undefined_feature_is_null_quietly_in_the_real_process(lung, tmp_path):
    """Two voxels: pyradiomics' robust MAD (10th-90th percentile) has no voxel left and is NaN.
    The JSON says null (as the store's features_json does), and numpy's 'Mean of empty slice'
    warning from inside pyradiomics does not reach the user's terminal."""
    image_path, _ = lung
    image = sitk.ReadImage(str(image_path))
    voxels = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    voxels[30, 100, 100:102] = 1
    mask = sitk.GetImageFromArray(voxels)
    mask.CopyInformation(image)
    mask_path = tmp_path / "two_voxels.nii.gz"
    sitk.WriteImage(mask, str(mask_path))
    params = tmp_path / "tiny.yaml"
    params.write_text("setting:\n  binWidth: 25\n  minimumROIDimensions: 1\n  minimumROISize: 1\n")
    entry = "from palmares_desktop.cli.main import cli; cli()"
    cmd = [sys.executable, "-c", entry, "radiomics", str(image_path), str(mask_path), "--params", str(params)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    ours = json.loads(done.stdout)
    raw = RadiomicsFeatureExtractor(str(params)).execute(image, mask)
    key = "original_firstorder_RobustMeanAbsoluteDeviation"
    assert np.isnan(raw[key]) and ours[key] is None
    assert ours["original_firstorder_Mean"] == float(raw["original_firstorder_Mean"])
    assert [k for k, v in ours.items() if v is None] == [key]


def test_a_dicom_seg_mask_is_placed_on_the_image_grid(shared_data, tmp_path):
    """SimpleITK reads a SEG's frames on a grid of their own (3 frames here, refused as 'does not
    match'); the command places them on the CT by position, like `segmentation add`. The dcmqi
    SEG and dcmqi's own NRRD export of it give the same features."""
    folder = shared_data / "ct_3slice_seg_dcmqi"
    params = tmp_path / "thin.yaml"  # first order only: the same voxels is what is tested (fast)
    params.write_text(
        "setting:\n  binWidth: 25\n  minimumROIDimensions: 2\n  geometryTolerance: 1.0e-4\n"
        "featureClass:\n  firstorder: []\n"
    )
    from_seg = _run(folder / "ct", folder / "seg" / "liver.dcm", "--params", params)
    from_nrrd = _run(folder / "ct", folder / "seg" / "liver_seg.nrrd", "--params", params)
    assert from_seg.exit_code == 0 and from_nrrd.exit_code == 0, from_seg.output
    seg, nrrd = json.loads(from_seg.stdout), json.loads(from_nrrd.stdout)
    assert seg["diagnostics_Mask-original_VoxelNum"] == 107098
    features = [k for k in nrrd if k.startswith("original_")]
    assert len(features) == 18 and all(seg[k] == nrrd[k] for k in features)
    assert seg["original_firstorder_Mean"] == pytest.approx(37.3289324, abs=1e-6)  # HU in the liver
    wrong = _run(folder / "ct", folder / "seg" / "liver.dcm", "--params", params, "--label", 3)
    assert wrong.exit_code == 1
    assert "Label 3 is not in the DICOM SEG mask: it holds label 1." in wrong.output

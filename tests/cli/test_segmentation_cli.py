"""`palmares segmentation add` on real dcmqi data: success, refusals in words, no tracebacks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from series_fixture import import_ct  # noqa: E402

from palmares_desktop.cli.main import _register, main  # noqa: E402


@pytest.fixture
def palmares():
    _register()
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args])


def test_add_dicom_seg_then_refusals(palmares, store, shared_data):
    folder = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, folder / "ct", "IT03-0001")
    result = palmares(
        "segmentation",
        "add",
        "--store",
        store.root,
        "--subject",
        "IT03-0001",
        "--modality",
        "ct",
        folder / "seg" / "liver.dcm",
        "--lesion-site",
        "liver",
    )
    assert result.exit_code == 3, result.output  # saved, but the features asked for failed
    assert (
        "IT03-0001 CT: lesion 'Liver' (liver), segmentation version 1: 107098 voxels, 70.36 mL"
        in result.output
    )
    assert store.rows("segmentations")[0]["voxel_count"] == 107098
    # Features are computed right after the version is saved; this 3-slice liver is too thin for the
    # 3-D CT preset, so the failure is stored with its reason and reported, and the mask is kept.
    (features,) = store.rows("feature_sets")
    assert (
        features["status"] == "error" and features["segmentation_id"] == store.rows("segmentations")[0]["id"]
    )
    assert f"Radiomics (ct) failed, stored with its reason: {features['error']}" in result.output

    result = palmares(
        "segmentation",
        "add",
        "--store",
        store.root,
        "--subject",
        "IT03-0001",
        "--modality",
        "ct",
        shared_data / "ibsi_digital_phantom" / "mask" / "mask.nii.gz",
    )
    assert result.exit_code == 1
    assert (
        "Error: The mask does not fit the CT: the mask is 5x4x4 at 2x2x2 mm, the CT is 512x512x3"
        in result.output
    )
    assert "Traceback" not in result.output

    result = palmares(
        "segmentation",
        "add",
        "--store",
        store.root,
        "--subject",
        "IT03-0001",
        "--modality",
        "ct",
        folder / "seg" / "liver_seg.nrrd",
        "--label",
        "4",
    )
    assert result.exit_code == 1 and "Label 4 is not in the NRRD mask: it holds label 1." in result.output

    result = palmares(
        "segmentation",
        "add",
        "--store",
        store.root.parent / "nowhere",
        "--subject",
        "IT03-0001",
        "--modality",
        "pt",
        folder / "seg" / "liver.dcm",
    )
    assert result.exit_code == 1 and "There is no PALMARES store" in result.output
    assert len(store.rows("segmentations")) == 1


def test_one_word_for_each_thing_across_commands(tmp_path):
    """--site is the centre everywhere; --modality takes ct|pet (pt still accepted for old scripts)."""
    from palmares_desktop.cli.main import _register, main

    _register()
    runner = CliRunner()
    for command in (
        ["segmentation", "add", "x.nrrd"],
        ["pet", "threshold", "--at", "0,0,0", "--rule", "41%"],
    ):
        args = [*command, "--store", str(tmp_path / "s"), "--subject", "IT03-0001", "--site", "liver"]
        if command[0] == "segmentation":
            args += ["--modality", "ct"]
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "--site is the centre" in result.output and "--lesion-site 'liver'" in result.output
    shown = runner.invoke(main, ["segmentation", "add", "--help"]).output
    assert "[ct|pet]" in shown and "--lesion-site" in shown and "--site " not in shown
    wrong = runner.invoke(
        main, ["segmentation", "add", "x.nrrd", "--subject", "IT03-0001", "--modality", "mr"]
    )
    assert wrong.exit_code == 2 and "'mr' is not one of ct, pet." in wrong.output
    for word in ("pet", "pt", "PET"):
        typed = runner.invoke(
            main,
            [
                "segmentation",
                "add",
                "x.nrrd",
                "--store",
                str(tmp_path / "none"),
                "--subject",
                "IT03-0001",
                "--modality",
                word,
            ],
        )
        assert typed.exit_code == 1 and "There is no PALMARES store" in typed.output  # accepted, then refused

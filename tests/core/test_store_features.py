"""Features per segmentation version in the store: provenance, failures, locks and staleness.

Real data: the IBSI lung CT (PAT1, DICOM) with its GTV (NIfTI), and the dcmqi 3-slice CT whose
liver SEG is too thin for the 3-D CT preset (a real failure, stored with pyradiomics' reason).
"""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk
from series_fixture import import_ct, insert_series

from palmares_desktop.core.radiomics.errors import RadiomicsLockError
from palmares_desktop.core.radiomics.extract import extract_features
from palmares_desktop.core.radiomics.params import load_params, lock_params, set_lock_mode
from palmares_desktop.core.radiomics.store_features import (
    compute_features_for_segmentation,
    feature_values,
    pending_work,
)
from palmares_desktop.core.segmentation.labelmaps import add_segmentation

SUBJECT = "IT03-0002"


@pytest.fixture
def lung(store, shared_data):
    """PAT1 CT imported for SUBJECT and its GTV added as a segmentation; returns the segmentation row."""
    folder = shared_data / "ibsi_ct_lung_pat1"
    import_ct(store, folder / "dicom" / "image", SUBJECT)
    return add_segmentation(
        store, SUBJECT, "CT", folder / "nifti" / "mask" / "mask.nii.gz", lesion_name="GTV-1", organ="lung"
    )


def test_features_are_stored_with_provenance_and_equal_a_direct_extraction(store, lung):
    row = compute_features_for_segmentation(store, lung.id)
    assert row["status"] == "ok" and row["error"] is None and row["params_name"] == "ct"
    series = store.get("series", lung.series_id)
    params = load_params("ct")
    assert (row["params_sha256"], row["image_sha256"], row["mask_sha256"]) == (
        params.sha256,
        series["pixel_sha256"],
        lung.mask_sha256,
    )
    assert (row["lesion_id"], row["series_id"], row["modality"]) == (lung.lesion_id, series["id"], "CT")

    direct = extract_features(
        sitk.ReadImage(str(store.path(series["pixel_path"]))),
        sitk.ReadImage(str(store.path(lung.mask_path))),
        params,
        label=1,
    )
    stored = feature_values(row)
    assert stored == direct.values  # bit-identical after the JSON round trip
    assert len(stored) > 100 and stored["original_shape_VoxelVolume"] > 100_000  # mm3 of a real GTV

    provenance = json.loads(row["provenance_json"])
    assert provenance["params"]["sha256"] == params.sha256 and provenance["params"]["text"] == params.text
    assert provenance["versions"]["pyradiomics"].startswith("v3.1")
    assert provenance["diagnostics"]["diagnostics_Mask-original_VoxelNum"] == lung.voxel_count
    assert provenance["store"]["segmentation_version"] == 1 and row["elapsed_s"] > 0

    # Current now: asking again returns the same row, and nothing is pending.
    assert compute_features_for_segmentation(store, lung.id)["id"] == row["id"]
    assert pending_work(store) == []


def test_a_failed_extraction_is_stored_with_its_reason(store, shared_data):
    folder = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, folder / "ct", SUBJECT)
    seg = add_segmentation(store, SUBJECT, "CT", folder / "seg" / "liver.dcm")
    row = compute_features_for_segmentation(store, seg.id)  # never raises
    assert row["status"] == "error" and row["features_json"] is None
    assert "extends in only 2 dimension(s)" in row["error"] and "minimumROIDimensions" in row["error"]
    # pyradiomics' own wording is kept in the provenance beside the plain sentence.
    provenance = json.loads(row["provenance_json"])
    assert "too few dimensions" in provenance["pyradiomics_reason"]
    # ...with what is needed to reproduce the failure: the parameter file and the versions.
    params = load_params("ct")
    assert provenance["params"]["sha256"] == params.sha256 == row["params_sha256"]
    assert provenance["params"]["text"] == params.text
    assert provenance["versions"]["pyradiomics"].startswith("v3.1")
    # A failure is a result too: not recomputed unless asked.
    assert pending_work(store) == []
    assert pending_work(store, retry_failed=True) == [(seg.id, "ct")]


def test_staleness_new_version_new_image_new_parameters(store, lung, shared_data, tmp_path):
    first = compute_features_for_segmentation(store, lung.id)
    # A new version of the lesion (the GTV eroded by one voxel): only it is pending.
    mask = sitk.ReadImage(str(store.path(lung.mask_path)))
    eroded = sitk.BinaryErode(mask, [1, 1, 1])
    v2 = add_segmentation(store, SUBJECT, "CT", eroded, lesion_name="GTV-1")
    assert v2.version == 2
    assert pending_work(store) == [(v2.id, "ct")]
    assert pending_work(store, latest_only=True) == [(v2.id, "ct")]
    compute_features_for_segmentation(store, v2.id)
    assert pending_work(store) == []

    # Another parameter file: every segmentation needs it; the study preset stays current.
    custom = tmp_path / "ct_bin50.yaml"
    custom.write_text(load_params("ct").text.replace("binWidth: 25.0", "binWidth: 50.0"))
    assert sorted(pending_work(store, presets=[str(custom)])) == sorted(
        [(lung.id, str(custom)), (v2.id, str(custom))]
    )
    assert pending_work(store, presets=["pet"]) == []  # the PET preset is not for CT lesions

    # The image changed (its recorded hash): both versions are stale; old rows are kept.
    series = store.get("series", lung.series_id)
    store.update("series", series["id"], {"pixel_sha256": "0" * 64})
    assert len(pending_work(store)) == 2
    again = compute_features_for_segmentation(store, lung.id)
    assert again["id"] != first["id"] and again["image_sha256"] == "0" * 64
    assert feature_values(again) == feature_values(first)
    assert len(store.rows("feature_sets")) == 3


def test_study_lock_records_or_refuses_a_deviation(store, lung, tmp_path):
    lock_params(store, "CT", load_params("ct"))
    assert compute_features_for_segmentation(store, lung.id)["deviation"] is None
    custom = tmp_path / "ct_bin50.yaml"
    custom.write_text(load_params("ct").text.replace("binWidth: 25.0", "binWidth: 50.0"))
    row = compute_features_for_segmentation(store, lung.id, preset=str(custom))
    assert row["status"] == "ok" and "is not the study's locked CT parameter file" in row["deviation"]
    set_lock_mode(store, "refuse")
    with pytest.raises(RadiomicsLockError, match="refuses extraction with any other file"):
        compute_features_for_segmentation(store, lung.id, preset=str(custom), force=True)


def test_pet_lesions_use_the_pet_preset_on_the_suv_volume(store, shared_data):
    # IBSI STS PET: stored in GML, i.e. already SUVbw (factor 1.0). The lesion: SUV >= 2.5, a trial rule.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(shared_data / "petct_sts_001" / "PET" / "image")))
    suv = sitk.Cast(reader.Execute(), sitk.sitkFloat32)
    insert_series(store, SUBJECT, suv, modality="PT", units="SUVbw")
    hot = sitk.Cast(sitk.BinaryThreshold(suv, 2.5, 1e9), sitk.sitkUInt8)
    seg = add_segmentation(
        store,
        SUBJECT,
        "PT",
        hot,
        lesion_name="sarcoma",
        organ="soft tissue",
        method="threshold",
        parameters={"suv_min": 2.5},
    )
    assert pending_work(store) == [(seg.id, "pet")]
    row = compute_features_for_segmentation(store, seg.id)
    assert row["params_name"] == "pet" and row["modality"] == "PT", row["error"]
    assert row["status"] == "ok", row["error"]
    values = feature_values(row)
    diagnostics = json.loads(row["provenance_json"])["diagnostics"]
    assert diagnostics["diagnostics_Mask-original_VoxelNum"] == seg.voxel_count == 3607
    # In SUV units: the region is >= 2.5 SUV before resampling, at most the volume's 25.4 SUV.
    assert 2.5 < values["original_firstorder_Mean"] < values["original_firstorder_Maximum"] <= 25.42


def test_an_undefined_feature_is_stored_as_null_like_the_cli_json(store, lung, tmp_path):
    """Two voxels: pyradiomics' robust MAD is NaN; features_json stores null, as `palmares radiomics`
    prints it, and every other value equals a direct extraction."""
    mask = sitk.ReadImage(str(store.path(lung.mask_path)))
    two = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    two.CopyInformation(mask)
    two[100, 100, 30] = 1
    two[101, 100, 30] = 1
    seg = add_segmentation(store, SUBJECT, "CT", two, lesion_name="two voxels")
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("setting:\n  binWidth: 25\n  minimumROIDimensions: 1\n  minimumROISize: 1\n")
    row = compute_features_for_segmentation(store, seg.id, preset=str(tiny))
    assert row["status"] == "ok" and "NaN" not in row["features_json"]
    stored = feature_values(row)
    key = "original_firstorder_RobustMeanAbsoluteDeviation"
    assert stored[key] is None and [k for k, v in stored.items() if v is None] == [key]
    image = sitk.ReadImage(str(store.path(store.get("series", seg.series_id)["pixel_path"])))
    direct = extract_features(image, two, load_params(tiny))
    cli_json = direct.to_dict()  # what `palmares radiomics` prints
    assert stored == {k: cli_json[k] for k in direct.values}


def test_a_feature_set_is_stored_once_when_two_writers_record_it(store, lung):
    import sqlite3

    from palmares_desktop.core.radiomics.store_features import plan_item, record_outcome, run_item

    item = plan_item(store, lung.id)
    outcome = run_item(item)
    first = record_outcome(store, item, outcome)
    second = record_outcome(store, item, outcome)  # e.g. a second batch that computed it meanwhile
    assert second["id"] == first["id"]
    assert len(store.rows("feature_sets", "status = 'ok'")) == 1
    with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses a second copy
        store.db.execute(
            "insert into feature_sets (id, site_code, segmentation_id, params_sha256, image_sha256,"
            " mask_sha256, status) values ('x', 'IT03', ?, ?, ?, ?, 'ok')",
            [first["segmentation_id"], first["params_sha256"], first["image_sha256"], first["mask_sha256"]],
        )

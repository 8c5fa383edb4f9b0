"""The readers through napari's own `viewer.open(..., plugin="napari-palmares")`, on real data:
numbers checked against core (the same SUV factor, the same voxels) and PROVENANCE.md's values."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from napari.layers import Image, Labels
from napari_palmares import SUBJECT_ENV, ReaderError, get_dicom_reader, get_store_reader, read_store
from napari_palmares._layers import placement_of_grid

from palmares_desktop.core.dicom.discovery import scan_folder
from palmares_desktop.core.pet.suv import compute_suv_for_files
from palmares_desktop.core.radiomics.images import read_image

PLUGIN = "napari-palmares"


def stored(layer) -> np.ndarray:
    """The layer's voxels back on their stored (z, y, x) grid."""
    return placement_of_grid(layer.metadata["grid"]).to_stored_array(layer.data)


def core_suv(folder) -> float:
    (series,) = [s for s in scan_folder(folder).series if s.modality == "PT"]
    return compute_suv_for_files(series.files).suvbw_factor


@pytest.mark.parametrize("dro", ["DRO_0_0", "DRO_1_0"])  # 1_0: RescaleSlope differs between slices
def test_a_pet_dro_opens_in_suvbw_with_cores_factor(make_napari_viewer, shared_data, dro):
    folder = shared_data / "suv_dro_oncoray" / "DRO" / dro / "PT"
    viewer = make_napari_viewer()
    (layer,) = viewer.open(folder, plugin=PLUGIN)
    assert isinstance(layer, Image)
    meta = layer.metadata
    assert meta["units"] == "SUVbw" and meta["modality"] == "PT"
    assert meta["suv_factor"] == core_suv(folder)
    assert meta["suv"]["error"] is None and meta["suv"]["inputs"]["decay_correction"] == "START"
    assert "Units BQML" in meta["suv_method"]
    # The voxels are core's own SUV volume (read_image is the radiomics path), voxel for voxel.
    np.testing.assert_array_equal(stored(layer), sitk.GetArrayFromImage(read_image(folder, suv=True)))
    # PROVENANCE.md: inside the DRO mask, SUVmin 0.20, SUVmedian 1.00, SUVmax 4.00 (two decimals).
    mask = sitk.GetArrayFromImage(
        sitk.ReadImage(str(folder.parent.parent / "DRO_0_0" / "mask" / "DRO_mask.nii.gz"))
    )
    inside = stored(layer)[mask > 0]
    assert [round(float(f(inside)), 2) for f in (np.min, np.median, np.max)] == [0.20, 1.00, 4.00]
    # Physical placement (z, y, x mm) and the PET display: inverted grey, 0-6 SUV.
    assert tuple(layer.scale) == (4.0, 4.0, 4.0) and tuple(layer.translate) == (0.0, 0.0, 0.0)
    assert layer.colormap.name == "gray_r" and tuple(layer.contrast_limits) == (0.0, 6.0)


def test_the_real_siemens_slice_has_provenances_suv_factor(make_napari_viewer, shared_data):
    folder = shared_data / "pet_bqml_orthanc" / "siemens_mct_single_slice"
    viewer = make_napari_viewer()
    (layer,) = viewer.open(folder, plugin=PLUGIN)
    # PROVENANCE.md: SUVbw factor 0.0004463640735541788 (decay 4338 s); slice max 6.4595 SUV.
    assert layer.metadata["suv_factor"] == pytest.approx(0.0004463640735541788, rel=1e-12)
    assert layer.metadata["suv"]["inputs"]["decay_time_s"] == pytest.approx(4338.0)
    assert float(layer.data.max()) == pytest.approx(6.4595, abs=1e-4)
    # Core's warnings about the series travel with the layer.
    assert any("only one slice" in p.lower() for p in layer.metadata["problems"])


def test_the_sts_pet_and_ct_open_in_suvbw_and_hu(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    (pet,) = viewer.open(shared_data / "petct_sts_001" / "PET" / "image", plugin=PLUGIN)
    assert pet.metadata["units"] == "SUVbw" and pet.metadata["suv_factor"] == 1.0  # Units GML
    ct_folder = shared_data / "petct_sts_001" / "CT" / "image"
    (ct,) = viewer.open(ct_folder, plugin=PLUGIN)
    assert ct.metadata["units"] == "HU" and ct.metadata["modality"] == "CT"
    np.testing.assert_array_equal(stored(ct), sitk.GetArrayFromImage(read_image(ct_folder)))
    assert ct.colormap.name == "gray" and tuple(ct.contrast_limits) == (-150.0, 250.0)  # abdomen W400/L50
    image = read_image(ct_folder)
    spacing, origin = image.GetSpacing(), image.GetOrigin()
    assert tuple(ct.scale) == pytest.approx(spacing[::-1])
    assert tuple(ct.translate) == pytest.approx(origin[::-1])
    # PET and CT share the frame of reference: both layers cover the same z range (-881.3 .. -691.6 mm).
    pet_z, ct_z = (
        [layer.data_to_world((k, 0, 0))[0] for k in (0, layer.data.shape[0] - 1)] for layer in (pet, ct)
    )
    assert pet_z == pytest.approx(ct_z, abs=0.05) and ct_z == pytest.approx([-881.3, -691.6], abs=0.1)


def test_a_pet_without_suv_opens_in_stored_units_with_the_reason(make_napari_viewer, shared_data):
    folder = shared_data / "pet_bqml_orthanc" / "comunix_petct" / "PET"  # PatientWeight = 0
    viewer = make_napari_viewer()
    (layer,) = viewer.open(folder, plugin=PLUGIN)
    assert layer.metadata["units"] == "BQML" and "weight" in layer.metadata["suv_error"].lower()
    assert layer.name.endswith("(not SUV)") and layer.contrast_limits[1] > 6.0


def test_a_demo_dicom_export_opens_as_ct_and_pet(make_napari_viewer, demo_store, demo_subject):
    viewer = make_napari_viewer()
    layers = viewer.open(demo_store / "demo-source" / demo_subject.dicom_folder, plugin=PLUGIN)
    units = {layer.metadata["modality"]: layer.metadata["units"] for layer in layers}
    assert units == {"CT": "HU", "PT": "SUVbw"}
    (pet,) = [layer for layer in layers if layer.metadata["modality"] == "PT"]
    assert pet.metadata["suv_factor"] == pytest.approx(demo_subject.suv_factor, rel=1e-12)


def test_folders_that_are_not_dicom_images_are_refused(make_napari_viewer, shared_data, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "scan.dcm").write_bytes(b"\0" * 200)  # a .dcm name without the DICOM marker
    refused = [
        tmp_path,
        shared_data / "ibsi_digital_phantom",  # NIfTI files and a licence
        shared_data / "petct_sts_001" / "PET" / "mask",  # DICOM, but only an RTSTRUCT
        shared_data / "petct_sts_001" / "PET" / "image" / "nothing-here",  # does not exist
    ]
    for folder in refused:
        assert get_dicom_reader(str(folder)) is None, folder
        assert get_store_reader(str(folder)) is None, folder
    one_file = next((shared_data / "petct_sts_001" / "PET" / "image").iterdir())
    assert get_dicom_reader(str(one_file)) is None  # a folder reader: a single file is not its job
    viewer = make_napari_viewer()
    with pytest.raises(ValueError, match="refused"):
        viewer.open(tmp_path, plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_the_demo_store_opens_its_subjects_ct_pet_and_lesions(make_napari_viewer, demo_store, demo_subject):
    from palmares_desktop.core.reading_set import subject_segmentations
    from palmares_desktop.core.store import Store

    db = demo_store / Store.DB_NAME
    before = db.stat().st_mtime_ns
    assert get_dicom_reader(str(demo_store)) is None  # a store also holds DICOM: the store reader reads it
    viewer = make_napari_viewer()
    layers = viewer.open(demo_store, plugin=PLUGIN)
    images = [layer for layer in layers if isinstance(layer, Image)]
    labels = [layer for layer in layers if isinstance(layer, Labels)]
    assert [layer.metadata["modality"] for layer in images] == ["CT", "PT"]
    ct, pet = images
    assert ct.metadata["units"] == "HU" and pet.metadata["units"] == "SUVbw"
    assert pet.metadata["suv_factor"] == pytest.approx(demo_subject.suv_factor, rel=1e-12)
    assert pet.metadata["suv"]["inputs"]["patient_weight_kg"] == pytest.approx(demo_subject.weight_kg)
    assert pet.colormap.name == "hot" and pet.blending == "additive"  # fused over the CT
    assert {layer.metadata["subject_code"] for layer in layers} == {demo_subject.code}
    with Store.open(demo_store, create=False, read_only=True) as store:
        subject = store.subject_by_code(demo_subject.code)
        stored_rows = {s.id: s for s in subject_segmentations(store, subject.id)}
        pet_row = store.get("series", pet.metadata["series_id"])
        np.testing.assert_array_equal(
            stored(pet), sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(pet_row["pixel_path"]))))
        )
    # One labels layer per stored segmentation (each planted lesion on CT and on PET), voxel for voxel.
    assert len(labels) == len(stored_rows) == 2 * len(demo_subject.lesions)
    for layer in labels:
        row = stored_rows[layer.metadata["segmentation_id"]]
        meta = layer.metadata
        assert int(np.count_nonzero(layer.data)) == row.voxel_count == meta["voxel_count"] > 0
        assert meta["lesion_name"] == row.lesion_name and meta["version"] == row.version == 1
        assert meta["author"] == "demo generator" and meta["series_id"] == row.series_id
        assert set(np.unique(layer.data)) == {0, meta["label"]}
    # CT and PET masks of a lesion get one number, and overlay in world space (within a PET voxel).
    for lesion in demo_subject.lesions:
        pair = [layer for layer in labels if layer.metadata["lesion_name"] == lesion["name"]]
        assert len(pair) == 2 and len({layer.metadata["label"] for layer in pair}) == 1
        centres = [layer.data_to_world(np.argwhere(layer.data).mean(axis=0)) for layer in pair]
        assert np.linalg.norm(np.subtract(*centres)) < 4.0, lesion["name"]
        assert centres[0][::-1] == pytest.approx(lesion["centre_mm"], abs=4.0)  # world (z,y,x) vs LPS (x,y,z)
    assert db.stat().st_mtime_ns == before  # opened read-only: nothing written


def test_the_store_subject_is_chosen_by_code(demo_store, demo_subject, monkeypatch):
    layers = read_store(demo_store, subject=demo_subject.code)
    assert {kwargs["metadata"]["subject_code"] for _, kwargs, _ in layers} == {demo_subject.code}
    monkeypatch.setenv(SUBJECT_ENV, "IT99-0042")
    with pytest.raises(ReaderError, match=f"no subject IT99-0042 .*{demo_subject.code}"):
        read_store(demo_store)

"""Label maps (NRRD, NIfTI, DICOM SEG) into the store, on real dcmqi/highdicom data."""

from __future__ import annotations

import hashlib

import highdicom as hd
import numpy as np
import pytest
import SimpleITK as sitk
from series_fixture import import_ct

from palmares_desktop.core.segmentation.geometry import GeometryMismatchError, Grid, check_geometry
from palmares_desktop.core.segmentation.labelmaps import (
    SegmentationError,
    add_segmentation,
    read_label_map,
)

SUBJECT = "IT03-0001"
LIVER_VOXELS = 107098  # voxels of label 1 in dcmqi's liver_seg.nrrd (the source of liver.dcm)


@pytest.fixture
def ct3(store, shared_data):
    """The dcmqi 3-slice CT imported for SUBJECT; returns (series row, data folder)."""
    folder = shared_data / "ct_3slice_seg_dcmqi"
    return import_ct(store, folder / "ct", SUBJECT), folder


def _mask_array(store, row) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(row.mask_path))))


def test_dicom_seg_matches_the_nrrd_it_was_made_from(store, ct3):
    series, folder = ct3
    row = add_segmentation(store, SUBJECT, "CT", folder / "seg" / "liver.dcm", organ="liver")
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "seg" / "liver_seg.nrrd")))
    assert row.voxel_count == LIVER_VOXELS == int((reference == 1).sum())
    assert np.array_equal(_mask_array(store, row), (reference == 1).astype(np.uint8))

    mask = sitk.ReadImage(str(store.path(row.mask_path)))
    volume = sitk.ReadImage(str(store.path(series["pixel_path"])))
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert Grid.of(mask) == Grid.of(volume)  # exactly the image geometry, not merely close
    assert row.mask_path == f"masks/{row.id}.nrrd"
    assert row.mask_sha256 == hashlib.sha256(store.path(row.mask_path).read_bytes()).hexdigest()
    assert row.volume_ml == pytest.approx(LIVER_VOXELS * np.prod(volume.GetSpacing()) / 1000)
    assert row.volume_ml == pytest.approx(70.36, abs=0.01)
    lesion = store.get("lesions", row.lesion_id)
    assert (lesion["name"], lesion["organ"], row.version, row.method) == (
        "Liver",
        "liver",
        1,
        "imported",
    )
    assert row.source["segment_label"] == "Liver"


def test_nrrd_versions_and_identical_re_add(store, ct3):
    _, folder = ct3
    first = add_segmentation(store, SUBJECT, "ct", folder / "seg" / "liver_seg.nrrd", lesion_name="Liver")
    assert first.voxel_count == LIVER_VOXELS
    # The same mask again is the same version, not a new one.
    again = add_segmentation(store, SUBJECT, "ct", folder / "seg" / "liver.dcm", lesion_name="Liver")
    assert again.id == first.id
    # A different mask for the same lesion and series is version 2 (segment 3 of the overlap SEG).
    second = add_segmentation(
        store,
        SUBJECT,
        "CT",
        folder / "seg" / "partial_overlaps.dcm",
        label=3,
        lesion_name="Liver",
        method="edited",
        parameters={"tool": "test"},
    )
    assert (second.version, second.lesion_id) == (2, first.lesion_id)
    assert second.voxel_count == 117 + 117 + 10509  # its three frames, as stored in the SEG
    assert second.parameters.as_dict() == {"tool": "test"}
    assert len(list(store.path("masks").iterdir())) == 2


def test_overlapping_segments_are_extracted_exactly(store, ct3):
    _, folder = ct3
    label_map = read_label_map(folder / "seg" / "partial_overlaps.dcm")
    assert label_map.overlapping and label_map.labels() == [1, 2, 3, 4, 5]
    counts = {
        n: add_segmentation(
            store, SUBJECT, "CT", folder / "seg" / "partial_overlaps.dcm", label=n
        ).voxel_count
        for n in (1, 2)
    }
    assert counts == {1: 9602, 2: 11888}  # segments 1 and 2 share a slice and overlap


def test_geometry_mismatch_is_refused_in_words(store, ct3, shared_data, tmp_path):
    _, folder = ct3
    with pytest.raises(GeometryMismatchError) as info:
        add_segmentation(store, SUBJECT, "CT", shared_data / "ibsi_digital_phantom" / "mask" / "mask.nii.gz")
    message = str(info.value)
    assert "the mask is 5x4x4 at 2x2x2 mm, the CT is 512x512x3 at 0.8105x0.8105x1 mm" in message
    assert "origin differs by" in message

    shifted = sitk.ReadImage(str(folder / "seg" / "liver_seg.nrrd"))
    shifted.SetOrigin(np.add(shifted.GetOrigin(), (12.0, 0.0, 0.0)).tolist())
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nrrd"))
    with pytest.raises(GeometryMismatchError, match=r"origin differs by 12 mm"):
        add_segmentation(store, SUBJECT, "CT", tmp_path / "shifted.nrrd")
    assert store.rows("segmentations") == [] and list(store.path("masks").iterdir()) == []


def test_float32_rounding_of_a_nifti_header_is_tolerated(store, ct3, tmp_path):
    _, folder = ct3
    sitk.WriteImage(sitk.ReadImage(str(folder / "seg" / "liver_seg.nrrd")), str(tmp_path / "liver.nii.gz"))
    row = add_segmentation(store, SUBJECT, "CT", tmp_path / "liver.nii.gz")
    assert row.voxel_count == LIVER_VOXELS
    # The default lesion name never repeats the file name (it may carry the patient's name).
    digest = hashlib.sha256((tmp_path / "liver.nii.gz").read_bytes()).hexdigest()
    assert store.get("lesions", row.lesion_id)["name"] == f"mask {digest[:8]} label 1"


def test_spacing_drift_is_refused(store, ct3):
    series, _ = ct3
    grid = Grid.from_file(store.path(series["pixel_path"]))
    drifted = Grid(grid.size, (grid.spacing[0] * 1.001, *grid.spacing[1:]), grid.origin, grid.direction)
    # 511 voxels x 0.00081 mm: the far edge is 0.41 mm off although the origins agree.
    with pytest.raises(GeometryMismatchError, match=r"drift apart by up to 0.414 mm"):
        check_geometry(drifted, grid, image_name="CT")
    check_geometry(Grid(grid.size, grid.spacing, np.add(grid.origin, 0.03).tolist(), grid.direction), grid)


def test_label_absent_and_other_refusals(store, ct3, shared_data, tmp_path):
    _, folder = ct3
    with pytest.raises(SegmentationError, match=r"^Label 2 is not in the NRRD mask: it holds label 1\.$"):
        add_segmentation(store, SUBJECT, "CT", folder / "seg" / "liver_seg.nrrd", label=2)
    with pytest.raises(
        SegmentationError, match=r"Label 7 is not in the DICOM SEG mask: it holds labels 1, 2"
    ):
        add_segmentation(store, SUBJECT, "CT", folder / "seg" / "partial_overlaps.dcm", label=7)
    with pytest.raises(SegmentationError, match=r"has no PET series in this store; import it first"):
        add_segmentation(store, SUBJECT, "PT", folder / "seg" / "liver_seg.nrrd")
    with pytest.raises(SegmentationError, match=r"no subject IT03-0099"):
        add_segmentation(store, "IT03-0099", "CT", folder / "seg" / "liver_seg.nrrd")
    rtstruct = shared_data / "petct_sts_001" / "CT" / "mask" / "RS.dcm"
    with pytest.raises(SegmentationError, match=r"is a DICOM RTSTRUCT object, not a segmentation"):
        add_segmentation(store, SUBJECT, "CT", rtstruct)
    (tmp_path / "notes.nrrd").write_text("not an image")
    with pytest.raises(SegmentationError, match=r"Cannot read notes.nrrd"):
        add_segmentation(store, SUBJECT, "CT", tmp_path / "notes.nrrd")
    assert store.rows("segmentations") == [] and store.rows("lesions") == []


def test_failure_inside_the_transaction_leaves_no_file(store, ct3):
    _, folder = ct3
    add_segmentation(store, SUBJECT, "CT", folder / "seg" / "liver_seg.nrrd", lesion_name="L1", organ="liver")
    with pytest.raises(SegmentationError, match=r"recorded at liver, not bone"):
        add_segmentation(
            store,
            SUBJECT,
            "CT",
            folder / "seg" / "partial_overlaps.dcm",
            label=2,
            lesion_name="L1",
            organ="bone",
        )
    assert len(store.rows("segmentations")) == 1 and len(list(store.path("masks").iterdir())) == 1


def test_highdicom_seg_on_the_tiny_ct(store, shared_data):
    folder = shared_data / "ct_tiny_seg_highdicom"
    # The series' three evenly spaced slices (the fourth lies 202 mm away, an irregular gap).
    regular = [folder / "ct" / f"{n}.dcm" for n in (17136, 17166, 17196)]
    import_ct(store, folder / "ct", SUBJECT, files=regular)
    expected = {}
    for name in ("binary", "binary_fractional", "true_fractional"):
        seg = hd.seg.segread(folder / "seg" / f"seg_image_ct_{name}.dcm")
        pixels = seg.pixel_array.astype(float)
        threshold = 0.5 * float(getattr(seg, "MaximumFractionalValue", 1) or 1)
        expected[name] = int((pixels >= threshold).sum()) if name != "binary" else int((pixels > 0).sum())
        row = add_segmentation(
            store, SUBJECT, "CT", folder / "seg" / f"seg_image_ct_{name}.dcm", lesion_name=name
        )
        assert row.voxel_count == expected[name]
    # true_fractional holds 638 voxels at 128/255 (kept: >= one half) and 23 at 64/255 (dropped).
    assert expected == {"binary": 638, "binary_fractional": 638, "true_fractional": 638}
    with pytest.raises(
        GeometryMismatchError,
        match=r"frame 1 of seg_image_ct_binary_overlap.dcm .* lies "
        r"outside the CT",
    ):
        add_segmentation(store, SUBJECT, "CT", folder / "seg" / "seg_image_ct_binary_overlap.dcm")


def test_a_seg_drawn_on_another_scan_is_refused_even_on_an_identical_grid(store, ct3, tmp_path):
    import pydicom
    from pydicom.uid import generate_uid

    _, folder = ct3
    # Another patient's CT on exactly the same grid: the same slices under new identity and UIDs.
    other = tmp_path / "other_ct"
    other.mkdir()
    frame, study, series = generate_uid(), generate_uid(), generate_uid()
    for path in sorted((folder / "ct").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = "PZ-445566", "ZANETTI^GIULIA"
        ds.FrameOfReferenceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = frame, study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(other / path.name)
    import_ct(store, other, "IT03-0002")

    with pytest.raises(SegmentationError, match="drawn on another scan"):
        add_segmentation(store, "IT03-0002", "CT", folder / "seg" / "liver.dcm")
    assert store.rows("segmentations") == []
    # The scan it was drawn on (imported and de-identified) accepts it.
    assert add_segmentation(store, SUBJECT, "CT", folder / "seg" / "liver.dcm").voxel_count == LIVER_VOXELS

"""Segmentation export: DICOM SEG read back by highdicom (and by our own SEG import) onto the same
voxels, for the demo lesions and for a PET threshold on the real PET/CT of petct_sts_001; NIfTI and
NRRD label maps read back by SimpleITK on the series' own grid."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from palmares_desktop.core.importer import import_dicom  # noqa: E402
from palmares_desktop.core.pet.subject_pet import load_pet, threshold_lesion  # noqa: E402
from palmares_desktop.core.segmentation.export import export_subject  # noqa: E402
from palmares_desktop.core.segmentation.geometry import SegmentationError  # noqa: E402
from palmares_desktop.core.segmentation.labelmaps import binary_mask, read_label_map  # noqa: E402


def _sources_in_slice_order(store, series) -> list[pydicom.Dataset]:
    """The store's DICOM copies sorted along the slice normal (independently of the exporter)."""
    datasets = [pydicom.dcmread(p) for p in store.path(f"dicom/{series.id}").glob("*.dcm")]
    cosines = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    return sorted(datasets, key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))


def _check_seg(store, path: Path, expected: dict[str, np.ndarray], series) -> hd.seg.Segmentation:
    """Every segment of the SEG, read by highdicom per source instance, equals the stored mask."""
    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "BINARY"
    sources = _sources_in_slice_order(store, series)
    uids = [ds.SOPInstanceUID for ds in sources]
    assert {
        r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    } <= set(uids)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    labels = {int(n): seg.get_segment_description(n).segment_label for n in seg.segment_numbers}
    assert sorted(labels.values()) == sorted(expected)
    for number, name in labels.items():
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids, segment_numbers=[number], assert_missing_frames_are_empty=True
        )[..., 0]
        assert np.array_equal(pixels > 0, expected[name]), name
    # and our own SEG import places it on the same voxels of the stored volume
    label_map = read_label_map(path, reference=sitk.ReadImage(str(store.path(series.pixel_path))))
    for number, name in labels.items():
        assert np.array_equal(sitk.GetArrayFromImage(binary_mask(label_map, number)) > 0, expected[name])
    return seg


def _stored_masks(store, subject_code, modality) -> tuple[dict, dict[str, np.ndarray]]:
    from palmares_desktop.core.segmentation.export import subject_masks

    items = [i for i in subject_masks(store, subject_code) if i[0].modality == modality]
    masks = {
        lesion.name: sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(v.mask_path)))) > 0
        for _, lesion, v in items
    }
    return items[0][0], masks


def test_demo_lesions_as_dicom_seg_read_back_on_the_same_voxels(demo, tmp_path):
    store, manifest = demo
    subject = manifest.subjects[0]
    written = export_subject(store, subject.code, "seg", tmp_path)
    assert [p.name for p in written] == [
        f"{subject.code}_CT_lesions.seg.dcm",
        f"{subject.code}_PET_lesions.seg.dcm",
    ]
    for modality, path in zip(("CT", "PT"), written, strict=True):
        series, masks = _stored_masks(store, subject.code, modality)
        assert len(masks) == 4
        seg = _check_seg(store, path, masks, series)
        # SNOMED-coded segments: Morphologically altered structure / Neoplasm, the site as region
        by_label = {
            seg.get_segment_description(n).segment_label: seg.get_segment_description(n)
            for n in seg.segment_numbers
        }
        liver = by_label["liver metastasis"]
        assert liver.segmented_property_category.value == "49755003"
        assert liver.segmented_property_type.value == "108369006"
        assert (
            liver.anatomic_regions[0].value == "10200004"
            and liver.anatomic_regions[0].scheme_designator == "SCT"
        )
        assert by_label["vertebral metastasis"].anatomic_regions[0].value == "272673000"
        assert by_label["axillary node"].anatomic_regions[0].value == "59441001"
    manifest_json = json.loads((tmp_path / "segmentations.json").read_text())
    assert len(manifest_json["items"]) == 8 and {i["method"] for i in manifest_json["items"]} == {
        "planted (demo phantom)"
    }


@pytest.mark.parametrize("fmt, suffix", [("nifti", ".nii.gz"), ("nrrd", ".nrrd")])
def test_demo_label_maps_read_back_on_the_series_grid(demo, tmp_path, fmt, suffix):
    store, manifest = demo
    subject = manifest.subjects[1]
    written = export_subject(store, subject.code, fmt, tmp_path, lesion_name="mediastinal node")
    assert [p.name for p in written] == [
        f"{subject.code}_CT_mediastinal-node{suffix}",
        f"{subject.code}_PET_mediastinal-node{suffix}",
    ]
    for modality, path in zip(("CT", "PT"), written, strict=True):
        series, masks = _stored_masks(store, subject.code, modality)
        image = sitk.ReadImage(str(path))
        volume = sitk.ReadImage(str(store.path(series.pixel_path)))
        assert image.GetSize() == volume.GetSize()
        assert np.allclose(image.GetOrigin(), volume.GetOrigin()) and np.allclose(
            image.GetSpacing(), volume.GetSpacing()
        )
        assert np.array_equal(sitk.GetArrayFromImage(image) > 0, masks["mediastinal node"])
    with pytest.raises(SegmentationError, match="has no lesion named 'spleen'"):
        export_subject(store, subject.code, fmt, tmp_path, lesion_name="spleen")


def test_real_petct_threshold_exported_as_seg_reads_back(store, shared_data, tmp_path):
    summary = import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    assert summary.ok and not summary.errors
    _, _, pet, _ = load_pet(store, "IT03-0001")
    hottest = np.unravel_index(int(np.argmax(pet.suv)), pet.suv.shape)
    row, result = threshold_lesion(
        store, "IT03-0001", pet.point_of(hottest), "41%", lesion_name="sarcoma", organ="soft tissue"
    )
    assert result.metrics.suv_max == pytest.approx(float(pet.suv.max()))
    assert row.method == "PET threshold: 41 % of the region's SUVmax"
    assert row.voxel_count == int(result.mask.sum()) >= 10
    (path,) = export_subject(store, "IT03-0001", "seg", tmp_path)
    series, masks = _stored_masks(store, "IT03-0001", "PT")
    assert np.array_equal(masks["sarcoma"], result.mask)
    seg = _check_seg(store, path, masks, series)
    description = seg.get_segment_description(1)
    assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    assert description.anatomic_regions[0].value == "87784001"

"""DICOM discovery, validation and volume loading on the real reference data (and copies of it
damaged in the ways PACS exports are)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.fileset import FileSet
from pydicom.uid import JPEGLosslessSV1, generate_uid

from palmares_desktop.core.dicom.discovery import (
    iter_scan_folder,
    same_frame_of_reference,
    scan_folder,
)
from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.dicom.volume import CT_PADDING_HU, load_series

# ---------------------------------------------------------------- helpers


def _by_modality(result, modality):
    (series,) = [s for s in result.series if s.modality == modality]
    return series


def _reasons(result) -> dict[str, str]:
    return {Path(p).name: reason for p, reason in result.skipped}


def _reference_stack(files) -> np.ndarray:
    """Independent reference: pydicom pixel_array × slope + intercept, sorted by z."""
    datasets = [pydicom.dcmread(f) for f in files]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])


def _copy(files, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(f, folder / Path(f).name)) for f in files]


def _edit(path: Path, **values) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.fixture(scope="module")
def lung_files(shared_data) -> list[Path]:
    """The lung CT files in z order (their names do not follow z)."""
    files = (shared_data / "ibsi_ct_lung_pat1" / "dicom" / "image").glob("*.dcm")
    return sorted(
        files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
    )


@pytest.fixture(scope="module")
def sts(shared_data):
    return scan_folder(shared_data / "petct_sts_001")


# ---------------------------------------------------------------- real series


def test_petct_sts_finds_pet_and_ct_sharing_a_frame_of_reference(sts):
    pet, ct = _by_modality(sts, "PT"), _by_modality(sts, "CT")
    assert (pet.n_instances, pet.rows, pet.cols) == (59, 43, 41)
    assert (ct.n_instances, ct.rows, ct.cols) == (59, 202, 198)
    assert pet.spacing[:2] == pytest.approx((4.6875, 4.6875))
    assert ct.spacing[:2] == pytest.approx((0.976562, 0.976562))
    assert pet.spacing[2] == pytest.approx(3.27, abs=1e-6) and ct.spacing[2] == pytest.approx(3.27, abs=1e-6)
    assert pet.usable and ct.usable and pet.problems == [] and ct.problems == []
    assert same_frame_of_reference(pet, ct)
    # Slices are sorted along the normal: z increases through the files.
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in ct.files]
    assert z == sorted(z) and z[0] == pytest.approx(-881.32) and z[-1] == pytest.approx(-691.66, abs=0.01)
    assert len(ct.sop_instance_uids) == 59
    reasons = _reasons(sts)
    assert sum(r == "non-image object (RTSTRUCT)" for r in reasons.values()) == 1  # both are named RS.dcm
    assert [r for p, r in sts.skipped if p.endswith("RS.dcm")] == ["non-image object (RTSTRUCT)"] * 2


def test_petct_sts_pet_loads_with_per_slice_slopes_and_slice_scale(sts, shared_data):
    pet = _by_modality(sts, "PT")
    image = load_series(pet)
    values = sitk.GetArrayFromImage(image)
    assert image.GetPixelID() == sitk.sitkFloat32 and values.shape == (59, 43, 41)
    reference = _reference_stack(sorted((shared_data / "petct_sts_001/PET/image").glob("*.dcm")))
    np.testing.assert_allclose(values, reference, rtol=1e-6, atol=1e-6)
    assert values.max() == pytest.approx(25.4123, abs=1e-4)  # Units GML: already SUVbw
    assert image.GetOrigin() == pytest.approx((-21.09375, -86.71875, -881.3), abs=1e-3)
    # A factor per SOPInstanceUID multiplies the rescaled values slice by slice.
    factors = {uid: 2.0 + i for i, uid in enumerate(pet.sop_instance_uids)}
    scaled = sitk.GetArrayFromImage(load_series(pet, slice_scale=factors))
    np.testing.assert_allclose(scaled[10], values[10] * 12.0, rtol=1e-6)
    with pytest.raises(DicomError, match="no factor for 1 instance"):
        load_series(pet, slice_scale={uid: 1.0 for uid in pet.sop_instance_uids[1:]})


def test_ibsi_lung_ct_matches_the_nifti_copy(shared_data):
    result = scan_folder(shared_data / "ibsi_ct_lung_pat1")
    ct = _by_modality(result, "CT")
    assert ct.usable and ct.n_instances == 60
    assert _reasons(result)["DCM_RS_00060.dcm"] == "non-image object (RTSTRUCT)"
    image = load_series(ct)
    nifti = sitk.ReadImage(str(shared_data / "ibsi_ct_lung_pat1/nifti/image/phantom.nii.gz"))
    assert image.GetSize() == nifti.GetSize() == (204, 201, 60)
    assert image.GetSpacing() == pytest.approx(nifti.GetSpacing(), abs=1e-6)
    assert image.GetOrigin() == pytest.approx(nifti.GetOrigin(), abs=1e-4)
    assert image.GetDirection() == pytest.approx(nifti.GetDirection())
    values = sitk.GetArrayFromImage(image)
    np.testing.assert_array_equal(values, sitk.GetArrayFromImage(nifti))
    assert round(float(values.mean()), 1) == -266.5
    assert (values.min(), values.max()) == (-1000, 3065)
    assert image.GetPixelID() == sitk.sitkInt16


def test_irregular_z_of_tiny_ct_is_flagged_and_refused(shared_data):
    result = scan_folder(shared_data / "ct_tiny_seg_highdicom")
    (stack,) = [s for s in result.series if s.n_instances == 4]
    assert not stack.usable
    (problem,) = stack.problems
    assert "gap" in problem and "202.50 mm" in problem and "regular step is 1.25 mm" in problem
    with pytest.raises(DicomError, match="cannot be loaded as a regular volume"):
        load_series(stack)
    (single,) = [s for s in result.series if s.n_instances == 1]  # CT_small.dcm
    assert single.usable and "Only one slice" in single.problems[0]
    assert sum(r == "non-image object (SEG)" for _, r in result.skipped) == 5


def test_comunix_pet_and_ct_jpeg2000_have_different_frames_of_reference(shared_data):
    folder = shared_data / "pet_bqml_orthanc" / "comunix_petct"
    result = scan_folder(folder)
    pet, ct = _by_modality(result, "PT"), _by_modality(result, "CT")
    assert not same_frame_of_reference(pet, ct)
    assert pet.usable and ct.usable and (ct.rows, ct.cols, ct.n_instances) == (512, 512, 2)
    for series, sub in ((ct, "CT"), (pet, "PET")):  # JPEG 2000, decoded through pydicom + Pillow
        values = sitk.GetArrayFromImage(load_series(series))
        np.testing.assert_allclose(values, _reference_stack(sorted((folder / sub).glob("*.dcm"))), rtol=1e-6)
    assert pet.spacing[2] == pytest.approx(3.375, abs=1e-4)


def test_damaged_jpeg2000_stream_is_refused_in_a_plain_sentence(tmp_path, shared_data):
    files = _copy(sorted((shared_data / "pet_bqml_orthanc/comunix_petct/PET").glob("*.dcm")), tmp_path)
    data = bytearray(files[1].read_bytes())
    start = data.find(b"\xff\x4f\xff\x51")  # JPEG 2000 start-of-codestream + SIZ markers
    data[start : start + 200] = bytes(200)  # same size: the scan cannot tell, only decoding can
    files[1].write_bytes(bytes(data))
    (pet,) = scan_folder(tmp_path).series
    assert pet.usable and pet.n_instances == 2
    with pytest.raises(DicomError) as caught:
        load_series(pet)
    message = str(caught.value)
    assert files[1].name in message and "compressed image is damaged" in message
    assert "JPEG 2000" in message and "BytesIO" not in message and "plugin" not in message


def test_pet_with_fewer_slices_than_announced_is_flagged_as_an_incomplete_export(tmp_path, shared_data):
    # The real Comunix export holds 2 of the 83 slices its NumberOfSlices announces; the STS PET has all
    # 59 (no warning) until a transfer "stops" after 50 of them.
    comunix = _by_modality(scan_folder(shared_data / "pet_bqml_orthanc/comunix_petct"), "PT")
    assert comunix.usable and comunix.problems == [
        "The folder holds only 2 of the 83 slices the scanner made (NumberOfSlices): "
        "the export looks incomplete."
    ]
    files = _copy(sorted((shared_data / "petct_sts_001/PET/image").glob("*.dcm")), tmp_path)
    for file in files[50:]:
        file.unlink()
    (partial,) = scan_folder(tmp_path).series
    assert partial.usable and partial.n_instances == 50
    assert partial.problems[-1].startswith("The folder holds only 50 of the 59 slices")


def test_ct_padding_value_is_masked_to_air(shared_data):
    result = scan_folder(shared_data / "ct_3slice_seg_dcmqi")
    ct = _by_modality(result, "CT")
    assert ct.usable and ct.n_instances == 3 and ct.spacing[2] == pytest.approx(1.0, abs=1e-6)
    assert {r for _, r in result.skipped if "SEG" in r} == {"non-image object (SEG)"}
    values = sitk.GetArrayFromImage(load_series(ct))
    raw = _reference_stack(ct.files)  # keeps -3024 HU where PixelPaddingValue -2000 was stored
    padded = raw == -3024
    assert padded.sum() == 3 * 55772
    assert (values[padded] == CT_PADDING_HU).all()
    np.testing.assert_array_equal(values[~padded], raw[~padded])
    assert (values.min(), values.max()) == (-1024, 1381)


def test_scan_reports_progress_and_refuses_a_missing_folder(shared_data, tmp_path):
    steps = []
    task = iter_scan_folder(shared_data / "petct_sts_001")
    while True:
        try:
            steps.append(next(task))
        except StopIteration as stop:
            result = stop.value
            break
    assert steps[-1].done == steps[-1].total == 123 and len(result.series) == 2
    with pytest.raises(DicomError, match="Folder not found"):
        scan_folder(tmp_path / "nope")


# ---------------------------------------------------------------- bad input built from real files


def test_damaged_and_non_image_files_are_skipped_with_reasons(tmp_path, shared_data):
    src = sorted((shared_data / "ct_3slice_seg_dcmqi/ct").glob("*.dcm"))
    good = _copy(src, tmp_path / "ct")
    data = good[0].read_bytes()
    (tmp_path / "truncated_pixels.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "truncated_header.dcm").write_bytes(data[:400])
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "empty.dcm").write_bytes(b"")
    shutil.copy(good[1], tmp_path / "copy_of_02.dcm")
    no_pixels = pydicom.dcmread(good[2])
    del no_pixels.PixelData
    no_pixels.SOPInstanceUID = generate_uid()
    no_pixels.save_as(tmp_path / "no_pixels.dcm")
    localizer = pydicom.dcmread(good[2])
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    localizer.SOPInstanceUID, localizer.SeriesInstanceUID = generate_uid(), generate_uid()
    localizer.save_as(tmp_path / "scout.dcm")
    shutil.copy(shared_data / "pet_sr_seg_rwvm_dcmqi/sr.dcm", tmp_path / "report.dcm")
    shutil.copy(shared_data / "pet_sr_seg_rwvm_dcmqi/rwvm.dcm", tmp_path / "rwvm.dcm")

    result = scan_folder(tmp_path)
    reasons = _reasons(result)
    assert reasons["truncated_pixels.dcm"].startswith("truncated file: it ends ")
    assert reasons["truncated_pixels.dcm"].endswith(" bytes before the end of its pixel data")
    assert reasons["truncated_header.dcm"] == "truncated file: it ends inside its header"
    assert reasons["notes.txt"].startswith("not a DICOM file")
    assert reasons["empty.dcm"] == "empty file (0 bytes)"
    # Whichever of the two identical files is read second is the copy (the walk visits the root first).
    copies = [(p, r) for p, r in result.skipped if r.startswith("second copy of an instance already read")]
    assert copies == [
        (str(good[1]), f"second copy of an instance already read ({tmp_path / 'copy_of_02.dcm'})")
    ]
    assert reasons["no_pixels.dcm"] == "DICOM file without pixel data (CT, CT Image Storage)"
    assert reasons["scout.dcm"] == "localizer (scout) image, not part of a volume (CT)"
    assert reasons["report.dcm"] == "non-image object (SR)"
    assert reasons["rwvm.dcm"] == "non-image object (RWV)"
    (ct,) = result.series  # the three good slices still form their volume
    assert ct.usable and ct.n_instances == 3


def test_mixed_series_missing_slice_tilt_and_duplicates(tmp_path, shared_data, lung_files):
    # Two series (PET and CT of one study) flattened into one folder, plus a lung CT copy.
    (tmp_path / "mixed").mkdir()
    for sub in ("PET", "CT"):
        for f in sorted((shared_data / "petct_sts_001" / sub / "image").glob("*.dcm"))[:5]:
            shutil.copy(f, tmp_path / "mixed" / f"{sub}_{f.name}")
    mixed = scan_folder(tmp_path / "mixed")
    assert sorted((s.modality, s.n_instances, s.usable) for s in mixed.series) == [
        ("CT", 5, True),
        ("PT", 5, True),
    ]

    gap = _copy(lung_files[:12], tmp_path / "gap")
    gap[6].unlink()  # a missing slice in the middle
    (series,) = scan_folder(tmp_path / "gap").series
    assert not series.usable and series.n_instances == 11
    assert series.problems == [
        "1 gap(s) in the stack, about 1 slice(s) missing: e.g. 6.00 mm between the slices at "
        "(-174.39, -79.63, -85.40) and (-174.39, -79.63, -79.40) mm, where the regular step is 3.00 mm."
    ]
    with pytest.raises(DicomError, match="gap"):
        load_series(series)

    tilted = _copy(lung_files[:6], tmp_path / "tilt")
    for f in tilted:
        _edit(f, GantryDetectorTilt=15)
    (series,) = scan_folder(tmp_path / "tilt").series
    assert not series.usable and series.problems[0].startswith("Gantry/detector tilt of 15 degrees")

    dup = _copy(lung_files[:6], tmp_path / "dup")
    _edit(
        dup[3],
        SOPInstanceUID=generate_uid(),
        ImagePositionPatient=pydicom.dcmread(dup[2]).ImagePositionPatient,
    )
    (series,) = scan_folder(tmp_path / "dup").series
    assert not series.usable and "1 slice(s) share a position" in series.problems[0]

    irregular = _copy(lung_files[:6], tmp_path / "irregular")
    position = pydicom.dcmread(irregular[3]).ImagePositionPatient
    _edit(irregular[3], ImagePositionPatient=[position[0], position[1], float(position[2]) + 1.0])
    (series,) = scan_folder(tmp_path / "irregular").series
    assert not series.usable and series.problems[0].startswith("Slice spacing is irregular: 2 step(s)")

    no_position = _copy(lung_files[:4], tmp_path / "no_position")
    ds = pydicom.dcmread(no_position[1])
    del ds.ImagePositionPatient
    ds.save_as(no_position[1])
    (series,) = scan_folder(tmp_path / "no_position").series
    assert not series.usable and series.problems[0].startswith("1 of 4 slices have no ImagePositionPatient")


def test_mixed_orientations_in_one_series_are_split(tmp_path, lung_files):
    files = _copy(lung_files[:6], tmp_path)
    for f in files[3:]:
        _edit(f, ImageOrientationPatient=[1, 0, 0, 0, 0, -1])  # coronal
    result = scan_folder(tmp_path)
    assert [(s.part, s.n_instances) for s in result.series] == [("1/2", 3), ("2/2", 3)]
    for s in result.series:
        assert s.problems[0].startswith("This series mixes images of different orientation")
        assert len({s.series_uid for s in result.series}) == 1


def test_dicomdir_file_set_is_read_without_needing_the_dicomdir(tmp_path, shared_data):
    file_set = FileSet()
    for f in sorted((shared_data / "ct_3slice_seg_dcmqi/ct").glob("*.dcm")):
        file_set.add(pydicom.dcmread(f))
    file_set.write(tmp_path)
    result = scan_folder(tmp_path)
    assert [(s.n_instances, s.usable) for s in result.series] == [(3, True)]
    assert _reasons(result) == {"DICOMDIR": "DICOMDIR index file (the images it lists are read directly)"}


@pytest.mark.parametrize("modality", ["CT", "PT"])
def test_enhanced_multiframe_loads_like_the_single_frame_series(tmp_path, shared_data, modality):
    from highdicom.legacy import LegacyConvertedEnhancedCTImage, LegacyConvertedEnhancedPETImage

    sub = {"CT": "ibsi_ct_lung_pat1/dicom/image", "PT": "petct_sts_001/PET/image"}[modality]
    files = sorted((shared_data / sub).glob("*.dcm"))
    convert = {"CT": LegacyConvertedEnhancedCTImage, "PT": LegacyConvertedEnhancedPETImage}[modality]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = [pydicom.dcmread(f) for f in files]
        legacy.reverse()  # frame order must not matter: positions do
        enhanced = convert(legacy, series_instance_uid=generate_uid(), series_number=9,
                           sop_instance_uid=generate_uid(), instance_number=1)  # fmt: skip
    enhanced.save_as(tmp_path / "enhanced.dcm")
    (multi,) = scan_folder(tmp_path).series
    (single,) = scan_folder(shared_data / sub).series
    assert multi.usable and multi.n_instances == 1 and multi.n_slices == len(files) == single.n_slices
    assert multi.spacing == pytest.approx(single.spacing) and multi.origin == pytest.approx(single.origin)
    a, b = load_series(multi), load_series(single)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert a.GetOrigin() == pytest.approx(b.GetOrigin()) and a.GetDirection() == pytest.approx(
        b.GetDirection()
    )


def test_jpeg_lossless_decodes_through_the_imagecodecs_fallback(tmp_path, shared_data):
    for f in sorted((shared_data / "ct_3slice_seg_dcmqi/ct").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        frame = imagecodecs.ljpeg_encode(ds.pixel_array.view(np.uint16), bitspersample=16)
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1  # pydicom 3 has no plugin for it here
        ds.save_as(tmp_path / f.name, enforce_file_format=True)
    (compressed,) = scan_folder(tmp_path).series
    (native,) = scan_folder(shared_data / "ct_3slice_seg_dcmqi/ct").series
    assert compressed.usable
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(load_series(compressed)), sitk.GetArrayFromImage(load_series(native))
    )


def _scan_as_nobody(folder: str, queue) -> None:
    os.setgid(65534)
    os.setuid(65534)
    queue.put(scan_folder(folder).to_dict())


def test_unreadable_file_is_skipped_with_permission_denied(shared_data):
    # Root reads any file whatever its mode, so as root the scan runs in a child that drops to
    # the 'nobody' user; the folder is made outside pytest's private (0700) temporary root.
    folder = Path(tempfile.mkdtemp(prefix="palmares_perm_"))
    try:
        folder.chmod(0o755)
        files = _copy(sorted((shared_data / "ct_3slice_seg_dcmqi/ct").glob("*.dcm")), folder)
        for f in files:
            f.chmod(0o644)
        files[2].chmod(0o000)
        if os.geteuid() == 0:
            context = multiprocessing.get_context("fork")
            queue = context.Queue()
            child = context.Process(target=_scan_as_nobody, args=(str(folder), queue))
            child.start()
            result = queue.get(timeout=60)
            child.join()
        else:
            result = scan_folder(folder).to_dict()
        assert result["skipped"] == [{"path": str(files[2]), "reason": "cannot be read: permission denied"}]
        (series,) = result["series"]
        assert series["n_instances"] == 2 and series["usable"]
    finally:
        shutil.rmtree(folder)

"""`import_dicom` on real PET/CT folders: de-identified copies, volumes, rows, re-import, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from palmares_desktop.core.dicom.deid import pseudonymous_uid
from palmares_desktop.core.dicom.keys import KeyTable
from palmares_desktop.core.importer import ImportRefusedError, import_dicom, iter_import_dicom
from palmares_desktop.core.pet.suv import compute_suv
from palmares_desktop.core.store.files import STAGING_PREFIX

STS_FOR = "1.3.6.1.4.1.14519.5.2.1.5168.1900.316167340799089327122304118088"
SIEMENS_FACTOR = 0.0004463640735541788  # PROVENANCE.md, expected_suv.csv
TABLES = ("subjects", "subject_status", "studies", "series", "audit_log", "sites")


def _copy(src: Path, dest: Path, name: str = "IM{:03d}.dcm") -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i, file in enumerate(sorted(src.glob("*.dcm"))):
        out.append(dest / name.format(i))
        shutil.copyfile(file, out[-1])
    return out


def _sts(shared_data: Path, dest: Path, parts=("PET", "CT")) -> Path:
    for part in parts:
        _copy(shared_data / "petct_sts_001" / part / "image", dest / part)
    return dest


def _counts(store) -> dict[str, int]:
    return {t: store.db[t].count for t in TABLES}


def _stored_files(store) -> list[str]:
    return sorted(
        str(p.relative_to(store.root))
        for sub in ("dicom", "volumes", "masks")
        for p in (store.root / sub).rglob("*")
        if p.is_file()
    )


def _salt(store) -> bytes:
    with KeyTable.open(store.root) as keys:
        return keys.salt


def _rescaled(files: list[Path]) -> np.ndarray:
    slices = [pydicom.dcmread(f) for f in files]
    return np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices])


# ------------------------------------------------------------------------------------ happy paths
def test_pet_ct_import_volumes_rows_and_a_shared_pseudonymous_frame_of_reference(store, shared_data):
    summary = import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    assert summary.ok and not summary.errors
    assert [(s.modality, s.n_instances, s.units) for s in summary.imported] == [
        ("PT", 59, "SUVbw"),
        ("CT", 59, "HU"),
    ]
    rows = {r["modality"]: r for r in store.rows("series")}
    pet, ct = rows["PT"], rows["CT"]
    assert (
        pet["frame_of_reference_uid"]
        == ct["frame_of_reference_uid"]
        == pseudonymous_uid(STS_FOR, _salt(store))
    )
    assert pet["study_id"] == ct["study_id"] and len(store.rows("studies")) == 1
    suv = json.loads(pet["suv_json"])
    assert (
        suv["suvbw_factor"] == 1.0 and suv["error"] is None and suv["inputs"]["units_path"].startswith("GML")
    )
    assert all(uid.startswith("2.25.") for uid in suv["suvbw_factors"]) and len(suv["suvbw_factors"]) == 59

    # volumes: PET in SUVbw = stored x slope (GML), CT in HU, geometry and hash as recorded
    originals = sorted((shared_data / "petct_sts_001" / "PET" / "image").glob("*.dcm"))
    expected_pet = _rescaled(originals)
    pet_image = sitk.ReadImage(str(store.path(pet["pixel_path"])))
    pet_array = sitk.GetArrayFromImage(pet_image)
    assert pet_image.GetPixelID() == sitk.sitkFloat32 and pet_array.shape == (59, 43, 41)
    assert pet_array.max() == pytest.approx(expected_pet.max(), rel=1e-6)
    assert np.sort(pet_array.ravel()) == pytest.approx(
        np.sort(expected_pet.ravel().astype(np.float32)), rel=1e-6
    )
    ct_image = sitk.ReadImage(str(store.path(ct["pixel_path"])))
    assert json.loads(ct["size_json"]) == [198, 202, 59] and ct_image.GetSize() == (198, 202, 59)
    assert json.loads(ct["origin_json"])[2] == pytest.approx(-881.32)
    import hashlib

    assert hashlib.sha256(store.path(ct["pixel_path"]).read_bytes()).hexdigest() == ct["pixel_sha256"]

    # de-identified DICOM copies, one per instance, in slice order
    copies = sorted((store.root / "dicom" / pet["id"]).glob("*.dcm"))
    assert len(copies) == 59 and copies[0].name == "0000.dcm"
    first = pydicom.dcmread(copies[0])
    assert first.PatientID == "IT03-0001" and first.SeriesInstanceUID == pet["series_uid"]
    assert first.FrameOfReferenceUID == pet["frame_of_reference_uid"]

    # study date shifted by the subject's shift; status rows; one import audit event without PHI
    with KeyTable.open(store.root) as keys:
        shift = keys.date_shift_days("IT03-0001")
        assert keys.subject_for_patient("STS_001") == "IT03-0001"
    from datetime import date, timedelta

    assert store.rows("studies")[0]["study_date"] == (date(2000, 9, 7) + timedelta(days=shift)).isoformat()
    assert {(r["modality"], r["status"]) for r in store.rows("subject_status")} == {
        ("CT", "not started"),
        ("PT", "not started"),
    }
    events = store.rows("audit_log", "action = 'import_dicom'")
    assert len(events) == 1
    detail = json.loads(events[0]["detail_json"])
    assert [s["modality"] for s in detail["imported"]] == ["PT", "CT"] and detail["errors"] == 0


def test_reimport_is_a_no_op(store, shared_data):
    import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    counts, files = _counts(store), _stored_files(store)
    again = import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    assert again.ok and again.imported == [] and [s.reason for s in again.skipped] == ["already imported"] * 2
    assert _counts(store) == counts and _stored_files(store) == files


def test_a_partial_export_then_the_full_series_is_reported_not_hidden(store, shared_data, tmp_path):
    # A PACS transfer stopped after 20 of the 59 PET slices, then the complete export arrives.
    partial = _copy(shared_data / "petct_sts_001/PET/image", tmp_path / "partial")
    for file in partial[20:]:
        file.unlink()
    first = import_dicom(store, tmp_path / "partial", "IT03-0001")
    assert [(s.modality, s.n_instances) for s in first.imported] == [("PT", 20)]
    counts, files = _counts(store), _stored_files(store)
    full = import_dicom(store, shared_data / "petct_sts_001/PET/image", "IT03-0001")
    assert not full.ok and full.imported == [] and full.skipped == []
    (error,) = full.errors
    assert "already in the store with 20 slices of 43x41" in error.reason
    assert "folder holds 59 slices of 43x41" in error.reason and "left unchanged" in error.reason
    assert _counts(store) == counts and _stored_files(store) == files
    assert json.loads(store.rows("series")[0]["size_json"]) == [41, 43, 20]  # x (columns), y (rows), z


def test_importing_the_stores_own_copies_is_refused(store, shared_data):
    # Their PatientID is the subject code: imported again, a pseudonym would enter the key table
    # as if it were a real patient's ID.
    import_dicom(store, shared_data / "pet_bqml_orthanc/siemens_mct_single_slice", "IT03-0001")
    counts, files = _counts(store), _stored_files(store)
    (copy,) = (store.root / "dicom").iterdir()
    for folder in (store.root, store.root / "dicom", copy):
        with pytest.raises(ImportRefusedError, match="de-identified images of a PALMARES store"):
            import_dicom(store, folder, "IT03-0002")
    assert _counts(store) == counts and _stored_files(store) == files
    with KeyTable.open(store.root) as keys:
        assert keys.subject_for_patient("IT03-0001") is None and not keys.knows_subject("IT03-0002")


def test_new_series_of_the_same_subject_are_added(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in")
    shutil.move(folder / "CT", tmp_path / "later_CT")
    first = import_dicom(store, folder, "IT03-0001")
    second = import_dicom(store, tmp_path / "later_CT", "IT03-0001")
    assert [s.modality for s in first.imported] == ["PT"] and [s.modality for s in second.imported] == ["CT"]
    assert (
        len(store.rows("studies")) == 1
        and len(store.rows("subjects")) == 1
        and len(store.rows("series")) == 2
    )
    assert len(store.rows("audit_log", "action = 'import_dicom'")) == 2


def test_siemens_bqml_slice_becomes_suvbw_with_the_reference_factor(store, shared_data):
    summary = import_dicom(store, shared_data / "pet_bqml_orthanc" / "siemens_mct_single_slice", "IT03-0002")
    assert summary.ok and summary.imported[0].units == "SUVbw"
    row = store.rows("series")[0]
    suv = json.loads(row["suv_json"])
    assert suv["suvbw_factor"] == pytest.approx(SIEMENS_FACTOR, rel=1e-12)
    assert suv["inputs"]["decay_time_s"] == pytest.approx(4338)
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(row["pixel_path"]))))
    assert image.max() == pytest.approx(6.4595, abs=1e-4)  # 14471.376 Bq/mL x factor
    assert any("Only one slice" in p for p in json.loads(row["problems_json"]))


def test_pet_with_refused_suv_is_imported_in_bqml_and_flagged(store, shared_data):
    summary = import_dicom(store, shared_data / "pet_bqml_orthanc" / "comunix_petct", "IT03-0003")
    pet = next(s for s in summary.imported if s.modality == "PT")
    assert pet.units == "BQML" and "weight" in pet.suv_error.lower()
    # The scan's warning about the trimmed export (2 of 83 slices) is shown with the SUV refusal.
    assert (
        pet.warnings[0].startswith("The folder holds only 2 of the 83 slices")
        and "not SUV" in pet.warnings[1]
    )
    row = store.get("series", pet.series_id)
    assert json.loads(row["problems_json"]) == pet.warnings
    assert row["units"] == "BQML" and "weight" in json.loads(row["suv_json"])["error"].lower()
    assert any("not SUV" in p for p in json.loads(row["problems_json"]))
    ct = store.rows("series", "modality = 'CT'")[0]
    assert (
        ct["frame_of_reference_uid"] != row["frame_of_reference_uid"]
    )  # Comunix PET and CT do not share one


# ------------------------------------------------------------------------------------ PHI
PLANTED = {
    "PatientName": "ROSSI^MARIA",
    "PatientID": "PZ-998877",
    "PatientBirthDate": "19610314",
    "InstitutionName": "Ospedale San Gerardo",
    "ReferringPhysicianName": "BIANCHI^LUCA",
    "AccessionNumber": "ACC-55501",
    "StudyDescription": "PET-CT ROSSI MARIA",
    "SeriesDescription": "WB ROSSI",
    "ImageComments": "Paziente Maria Rossi letto 4",
    "OtherPatientIDs": "PZ-112233",
    "InstitutionAddress": "Via Pergolesi 33 Monza",
}


def _found(needle: bytes, blob: bytes) -> bool:
    """`needle` in `blob`, except inside a hash or UUID: a digits-only needle such as '55501' turns up
    by chance in the hex of SHA-256 hashes and UUIDs (about once in ten stores), which is no leak."""
    hexchars = b"0123456789abcdef-"
    at = blob.find(needle)
    while at >= 0:
        start, end = at, at + len(needle)
        while start > 0 and blob[start - 1] in hexchars:
            start -= 1
        while end < len(blob) and blob[end] in hexchars:
            end += 1
        if end - start < 32:
            return True
        at = blob.find(needle, at + 1)
    return False


NEEDLES = [
    "ROSSI",
    "Rossi",
    "rossi",
    "MARIA",
    "Maria",
    "PZ-998877",
    "998877",
    "19610314",
    "Gerardo",
    "BIANCHI",
    "ACC-55501",
    "55501",
    "PZ-112233",
    "Pergolesi",
    "Monza",
    "letto 4",
]


def _plant(path: Path) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    block = ds.private_block(0x0031, "ACME HOSPITAL RIS", create=True)
    block.add_new(0x01, "LO", "ROSSI^MARIA")
    ds.save_as(path)


def test_planted_identifiers_never_reach_anything_exportable(store, shared_data, tmp_path):
    folder = tmp_path / "ROSSI_MARIA_PZ-998877"  # the folder and file names carry PHI too
    files = []
    for part in ("PET", "CT"):
        files += _copy(
            shared_data / "petct_sts_001" / part / "image", folder / part, "ROSSI_MARIA_{:03d}.dcm"
        )
    siemens = _copy(
        shared_data / "pet_bqml_orthanc" / "siemens_mct_single_slice",
        folder / "SIEMENS",
        "ROSSI_MARIA_{:03d}.dcm",
    )
    for path in files + siemens:
        _plant(path)
    originals = [pydicom.dcmread(p, stop_before_pixels=True) for p in files + siemens]
    original_uids = {
        str(ds[k].value)
        for ds in originals
        for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
    }
    siemens_before = compute_suv([pydicom.dcmread(p, stop_before_pixels=True) for p in siemens])

    summary = import_dicom(store, folder, "IT03-0017")
    assert summary.ok and not summary.errors and len(summary.imported) == 3, summary.to_dict()

    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    exportable = [store.root / name for name in ("palmares.db", "palmares.db-wal", "palmares.db-shm")]
    exportable += [p for sub in ("volumes", "dicom", "masks") for p in (store.root / sub).rglob("*")]
    blobs = {p: p.read_bytes() for p in exportable if p.is_file()}
    assert len(blobs) >= 59 * 2 + 1 + 3
    for path, blob in blobs.items():
        for needle in NEEDLES + sorted(original_uids):
            assert not _found(needle.encode(), blob), f"{needle!r} found in {path.relative_to(store.root)}"
    assert b"PZ-998877" in (store.root / "keys.db").read_bytes()  # the only place that links back

    # SUV recomputed from the stored, de-identified copies is the SUV of the originals
    row = store.rows("series", "modality = 'PT' and units = 'SUVbw' and size_json = '[200, 200, 1]'")[0]
    stored = [pydicom.dcmread(p) for p in sorted((store.root / "dicom" / row["id"]).glob("*.dcm"))]
    after = compute_suv(stored)
    salt = _salt(store)
    assert siemens_before.suvbw_factor == pytest.approx(SIEMENS_FACTOR, rel=1e-12)
    assert after.suvbw_factors == {
        pseudonymous_uid(u, salt): f for u, f in siemens_before.suvbw_factors.items()
    }
    assert json.loads(row["suv_json"])["suvbw_factors"] == after.suvbw_factors
    assert stored[0].PatientWeight == 82 and stored[0].PatientSex == "F"


def test_a_kept_text_naming_the_patient_is_removed_and_said(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in")
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName = "ROSSI^MARIA"
        if ds.Modality == "PT":  # a text attribute de-identification keeps: it is checked and cleaned
            ds.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical = "FDG for Rossi Maria"
        ds.save_as(path)
    summary = import_dicom(store, folder, "IT03-0001")
    assert summary.ok and sorted(s.modality for s in summary.imported) == ["CT", "PT"]
    pet = store.rows("series", "modality = 'PT'")[0]
    assert "contained the patient's identifying values: Radiopharmaceutical." in pet["problems_json"]
    stored = pydicom.dcmread(next((store.root / "dicom" / pet["id"]).glob("*.dcm")))
    assert "Radiopharmaceutical" not in stored.RadiopharmaceuticalInformationSequence[0]
    assert stored.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose  # the rest is kept
    assert "Rossi" not in pet["problems_json"]


NAME_IN_CODES = {
    "PatientName": "Fumagallo^Pierluigino",
    "PatientID": "FPL-424242",
    "BodyPartExamined": "FUMAGALLO",
    "SeriesDescription": "PIERLUIGINO WB",
    "StudyDescription": "FUMAGALLO PET CT",
    "ProtocolName": "Protocollo Fumagallo",
    "ImageComments": "paziente Pierluigino F.",
    "AdditionalPatientHistory": "Fumagallo, fumatore",
}


def test_name_parts_in_kept_code_fields_and_free_text_reach_nothing(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in")
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        for keyword, value in NAME_IN_CODES.items():
            setattr(ds, keyword, value)
        if ds.Modality == "CT":
            ds.ConvolutionKernel = "PIERLUIGINO"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "FUMAGALLO"]
        ds.save_as(path)
    summary = import_dicom(store, folder, "IT03-0001")
    assert summary.ok and len(summary.imported) == 2, summary.to_dict()

    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [store.root / name for name in ("palmares.db", "palmares.db-wal", "palmares.db-shm")]
    files += [p for sub in ("volumes", "dicom", "masks") for p in (store.root / sub).rglob("*")]
    blobs = {p: p.read_bytes().lower() for p in files if p.is_file()}
    assert len(blobs) >= 59 * 2 + 1 + 2
    for path, blob in blobs.items():
        for needle in (b"fumagallo", b"pierluigino", b"fpl-424242", b"424242"):
            assert needle not in blob, f"{needle!r} found in {path.relative_to(store.root)}"
    ct = store.rows("series", "modality = 'CT'")[0]
    assert ct["description"] == "CT 3.27 mm"  # generated from what was kept: no kernel left
    assert "ConvolutionKernel" in ct["problems_json"] and "BodyPartExamined" in ct["problems_json"]
    stored = pydicom.dcmread(next((store.root / "dicom" / ct["id"]).glob("*.dcm")))
    assert list(stored.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]  # only the offending value went
    assert "BodyPartExamined" not in stored and "ConvolutionKernel" not in stored


def test_a_name_equal_to_a_defined_term_is_kept_not_refused(store, shared_data, tmp_path):
    """A patient called "Other": ImageType OTHER is the standard's word, the same for everyone, so it is
    kept and the series imported; the same name typed into a free code (BodyPartExamined) is removed."""
    folder = _sts(shared_data, tmp_path / "in", parts=("CT",))
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName = "Other^Ugo"
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        ds.BodyPartExamined = "OTHER ROOM"
        ds.save_as(path)
    summary = import_dicom(store, folder, "IT03-0001")
    assert summary.ok and len(summary.imported) == 1, summary.to_dict()
    ct = store.rows("series")[0]
    stored = pydicom.dcmread(next((store.root / "dicom" / ct["id"]).glob("*.dcm")))
    assert list(stored.ImageType) == ["DERIVED", "SECONDARY", "OTHER"]
    assert "BodyPartExamined" not in stored


def test_a_name_part_equal_to_a_device_word_does_not_block_the_import(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in")
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName = "SOFT^ANNA"  # the CT kernel is "SOFT", kept, and in the generated description
        ds.save_as(path)
    summary = import_dicom(store, folder, "IT03-0001")
    assert summary.ok and not summary.errors and len(summary.imported) == 2
    assert store.rows("series", "modality = 'CT'")[0]["description"] == "CT SOFT 3.27 mm"


# ------------------------------------------------------------------------------------ refusals
def test_folder_with_two_patients_is_refused_unless_one_is_chosen(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in", parts=("CT",))
    _copy(shared_data / "pet_bqml_orthanc" / "comunix_petct" / "PET", folder / "other")
    counts = _counts(store)
    with pytest.raises(ImportRefusedError, match="2 different patients"):
        import_dicom(store, folder, "IT03-0001")
    assert _counts(store) == counts and _stored_files(store) == []
    chosen = import_dicom(store, folder, "IT03-0001", patient_id="STS_001")
    assert [s.modality for s in chosen.imported] == ["CT"]


@pytest.mark.parametrize(
    ("code", "site", "message"),
    [
        ("Mario Rossi", None, "e.g. IT03-0017"),
        ("IT03-0001", "IT05", "must start with IT05"),
        ("IT03-0001", "Italy", "two capital letters"),
    ],
)
def test_invalid_codes_are_refused(store, shared_data, code, site, message):
    with pytest.raises(ImportRefusedError, match=message):
        import_dicom(store, shared_data / "petct_sts_001", code, site_code=site)
    assert store.rows("subjects") == []


def test_missing_folder_is_refused(store, tmp_path):
    with pytest.raises(ImportRefusedError, match="Folder not found"):
        import_dicom(store, tmp_path / "nowhere", "IT03-0001")


def test_one_patient_one_code(store, shared_data):
    import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    with pytest.raises(ImportRefusedError, match="already enrolled as IT03-0001"):
        import_dicom(store, shared_data / "petct_sts_001", "IT03-0002")
    with pytest.raises(ImportRefusedError, match="already used for another patient.*IT03-0002"):
        import_dicom(store, shared_data / "pet_bqml_orthanc" / "siemens_mct_single_slice", "IT03-0001")


# ------------------------------------------------------------------------------------ bad input
def test_truncated_and_junk_files_are_reported_and_the_valid_series_imported(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in", parts=("CT",))
    pet = sorted((shared_data / "petct_sts_001" / "PET" / "image").glob("*.dcm"))[0].read_bytes()
    (folder / "cut.dcm").write_bytes(pet[: len(pet) - 1000])  # a PET slice cut inside its pixel data
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("not dicom")
    summary = import_dicom(store, folder, "IT03-0001")
    assert summary.ok and [s.modality for s in summary.imported] == ["CT"]
    reasons = {Path(p).name: r for p, r in summary.files_skipped}
    assert set(reasons) == {"cut.dcm", "empty.dcm", "notes.txt"}
    assert "truncated" in reasons["cut.dcm"] and "empty" in reasons["empty.dcm"]


def _drive(task, until: str, action) -> object:
    """Run a task; call `action` once when a progress message starts with `until`."""
    done = False
    while True:
        try:
            step = next(task)
        except StopIteration as stop:
            return stop.value
        if not done and step.message.startswith(until):
            action()
            done = True


def test_a_file_broken_mid_series_fails_that_series_only_and_leaves_no_trace(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in")

    def truncate_ct_files():
        for path in (folder / "CT").glob("*.dcm"):  # real damage on disk, after the scan accepted them
            data = path.read_bytes()
            path.write_bytes(data[: len(data) - 5000])

    summary = _drive(iter_import_dicom(store, folder, "IT03-0001"), "de-identifying CT", truncate_ct_files)
    assert [s.modality for s in summary.imported] == ["PT"]
    assert len(summary.errors) == 1 and "truncated" in summary.errors[0].reason
    assert [r["modality"] for r in store.rows("series")] == ["PT"]
    pet_id = store.rows("series")[0]["id"]
    assert _stored_files(store) == sorted(
        [f"volumes/{pet_id}.nrrd"] + [f"dicom/{pet_id}/{i:04d}.dcm" for i in range(59)]
    )
    assert not list(store.root.glob(f"*/{STAGING_PREFIX}*"))


def test_a_failure_while_writing_leaves_the_store_unchanged(store, shared_data):
    counts = _counts(store)
    (store.root / "volumes").rmdir()
    (store.root / "volumes").write_text("a file where the volumes folder should be")
    summary = import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    assert not summary.ok and summary.imported == [] and len(summary.errors) == 2
    assert _counts(store) == counts
    assert list((store.root / "dicom").iterdir()) == []
    with KeyTable.open(store.root) as keys:
        assert keys.subject_for_patient("STS_001") is None  # no link for a patient with no images


def test_burned_in_annotation_is_refused(store, shared_data, tmp_path):
    folder = _sts(shared_data, tmp_path / "in")
    victim = sorted((folder / "CT").glob("*.dcm"))[10]
    ds = pydicom.dcmread(victim)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(victim)
    summary = import_dicom(store, folder, "IT03-0001")
    assert [s.modality for s in summary.imported] == ["PT"]
    assert "burned-in" in summary.errors[0].reason and len(store.rows("series")) == 1


def test_cancel_mid_series_rolls_back(store, shared_data):
    task = iter_import_dicom(store, shared_data / "petct_sts_001", "IT03-0001")
    for step in task:
        if step.message.startswith("de-identifying") and step.done >= 10:
            task.close()
            break
    assert store.rows("series") == [] and _stored_files(store) == []
    assert not list(store.root.glob(f"*/{STAGING_PREFIX}*"))

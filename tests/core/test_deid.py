"""De-identification of single datasets, the key table and the leak check, on real PET/CT headers."""

from __future__ import annotations

import io
import os
import re
import stat
import uuid

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from palmares_desktop.core.dicom import deid_rules as rules
from palmares_desktop.core.dicom.deid import (
    DeidContext,
    clean_description,
    deidentified_copy,
    deidentify,
    has_burned_in_annotation,
    identifying_values,
    pseudonymous_uid,
    shift_da,
    shift_dt,
)
from palmares_desktop.core.dicom.keys import KeyTable, KeyTableError
from palmares_desktop.core.dicom.leaks import LeakCheck, uid_present
from palmares_desktop.core.pet.suv import compute_suv

SALT = bytes(range(32))
CTX = DeidContext("IT03-0017", -1000, SALT)
SIEMENS = "pet_bqml_orthanc/siemens_mct_single_slice/2020-11-16-SalimKanounAnonymization.dcm"
PLANTED = [
    "ROSSI^MARIA",
    "ROSSI",
    "MARIA",
    "PZ-998877",
    "19610314",
    "Ospedale San Gerardo",
    "BIANCHI^LUCA",
    "ACC-55501",
    "Via Roma 1",
    "VERDI^ANNA",
    "Dr House",
]


def _planted(shared_data) -> Dataset:
    """The real Siemens PET slice with identifying values planted everywhere they hide."""
    ds = pydicom.dcmread(shared_data / SIEMENS)
    ds.PatientName = "ROSSI^MARIA"
    ds.PatientID = "PZ-998877"
    ds.PatientBirthDate = "19610314"
    ds.PatientBirthTime = "101500"
    ds.PatientAge = "095Y"
    ds.OtherPatientIDs = "PZ-998877-OLD"
    ds.OtherPatientIDsSequence = Sequence([Dataset()])
    ds.OtherPatientIDsSequence[0].PatientID = "PZ-998877"
    ds.PatientAddress = "Via Roma 1"
    ds.EthnicGroup = "Caucasian"
    ds.PregnancyStatus = 4
    ds.InstitutionName = "Ospedale San Gerardo"
    ds.InstitutionAddress = "Via Pergolesi 33 Monza"
    ds.ReferringPhysicianName = "BIANCHI^LUCA"
    ds.OperatorsName = "VERDI^ANNA"
    ds.AccessionNumber = "ACC-55501"
    ds.StudyDescription = "PET ROSSI MARIA"
    ds.SeriesDescription = "WB MARIA"
    ds.ImageComments = "Paziente ROSSI MARIA, letto 4"
    ds.ProtocolName = "Dr House protocol"
    ds.BurnedInAnnotation = "NO"
    ds.IconImageSequence = Sequence([Dataset()])
    ds.IconImageSequence[0].Rows = 1
    # a reference to another instance (must be replaced consistently) and overlay text
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x60003000, "OW", b"\x01\x02" * 8)
    # private tags: one with the patient's name, and the Philips SUV factor with its creator
    block = ds.private_block(0x0031, "ACME HOSPITAL", create=True)
    block.add_new(0x01, "LO", "ROSSI^MARIA")
    philips = ds.private_block(0x7053, "Philips PET Private Group", create=True)
    philips.add_new(0x00, "DS", "0.000551")
    return ds


def _written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_identifiers_are_removed_and_what_suv_needs_is_kept(shared_data):
    original = _planted(shared_data)
    ds, report = deidentified_copy(original, CTX)
    raw = _written(ds)
    for value in PLANTED + [
        original.StudyInstanceUID,
        original.SeriesInstanceUID,
        original.SOPInstanceUID,
        original.FrameOfReferenceUID,
        "1.2.3.4.5.6.7.8.9",
        "Caucasian",
        "101500",
    ]:
        assert value.encode() not in raw, value
    assert ds.PatientName == "IT03-0017" and ds.PatientID == "IT03-0017"
    assert ds.PatientBirthDate == "" and ds.AccessionNumber == "" and ds.ReferringPhysicianName == ""
    for keyword in (
        "PatientBirthTime",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "PatientAddress",
        "EthnicGroup",
        "PregnancyStatus",
        "InstitutionName",
        "InstitutionAddress",
        "OperatorsName",
        "ImageComments",
        "ProtocolName",
        "IconImageSequence",
        "StudyDescription",
        "RequestedProcedureCodeSequence",
        "ProcedureCodeSequence",
    ):
        assert keyword not in ds, keyword
    assert (0x6000, 0x3000) not in ds and (0x0031, 0x1001) not in ds and (0x0031, 0x0010) not in ds
    # kept: patient characteristics (age capped), device, acquisition physics, the Philips factor
    assert (ds.PatientSex, ds.PatientWeight, ds.PatientAge) == ("F", 82, "090Y")
    assert ds.Manufacturer == "SIEMENS" and ds.Units == "BQML" and ds.DecayCorrection == "START"
    assert ds[0x7053, 0x1000].value == "0.000551" and ds[0x7053, 0x0010].value == "Philips PET Private Group"
    assert report.private_kept == ["(7053,1000) Philips PET Private Group"]
    # series description with a name is replaced by one generated from kept attributes
    assert ds.SeriesDescription == "PT BQML AC XYZ Gauss2.00 3 mm"
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108", "113111"]
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)
    assert ds.preamble == b"\0" * 128 and raw[:128] == b"\0" * 128
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_uids_are_replaced_consistently_and_class_uids_kept(shared_data):
    original = _planted(shared_data)
    ds, report = deidentified_copy(original, CTX)
    assert ds.SOPInstanceUID == pseudonymous_uid(original.SOPInstanceUID, SALT)
    assert ds.FrameOfReferenceUID == pseudonymous_uid(original.FrameOfReferenceUID, SALT)
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == pseudonymous_uid(
        "1.2.3.4.5.6.7.8.9", SALT
    )
    assert ds.SOPClassUID == original.SOPClassUID == ds.ReferencedImageSequence[0].ReferencedSOPClassUID
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    # same input, same salt -> same output; another salt -> another UID
    again, _ = deidentified_copy(original, CTX)
    assert again.SeriesInstanceUID == ds.SeriesInstanceUID
    other, _ = deidentified_copy(original, DeidContext("IT03-0017", -1000, b"x" * 32))
    assert other.SeriesInstanceUID != ds.SeriesInstanceUID
    assert report.uid_map[original.StudyInstanceUID] == ds.StudyInstanceUID


def test_pseudonymous_uid_is_a_valid_2_25_uuid_uid():
    uid = pseudonymous_uid("1.3.12.2.1107.5.1.4.11047.30000019111306043635400005028", SALT)
    assert re.fullmatch(r"2\.25\.(0|[1-9]\d*)", uid) and len(uid) <= 64
    value = uuid.UUID(int=int(uid[5:]))
    assert value.version == 8 and value.variant == uuid.RFC_4122


def test_dates_shift_by_whole_days_and_times_stay(shared_data):
    original = _planted(shared_data)
    ds, _ = deidentified_copy(original, CTX)
    assert original.StudyDate == "20191113" and ds.StudyDate == shift_da("20191113", -1000) == "20170216"
    assert ds.SeriesTime == original.SeriesTime and ds.AcquisitionTime == original.AcquisitionTime
    item = ds.RadiopharmaceuticalInformationSequence[0]
    assert item.RadiopharmaceuticalStartDateTime == "20170216100000.000000"
    assert item.RadiopharmaceuticalStartTime == "100000.000000"
    assert list(ds.DateOfLastCalibration) == ["20170216", "20161006"]


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20240301", -1, "20240229"),  # leap day
        ("2024.03.01", 1, "20240302"),  # legacy ACR-NEMA form
        ("", 5, ""),
        ("notadate", 5, None),
    ],
)
def test_shift_da(value, days, expected):
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20191113100000.000000", -1000, "20170216100000.000000"),
        ("20191231235959+0100", 1, "20200101235959+0100"),
        ("201911", -30, "201910"),  # month precision stays month precision
        ("2019", -400, "2017"),  # 1 Jan 2019 minus 400 days
        ("x2019", 1, None),
    ],
)
def test_shift_dt(value, days, expected):
    assert shift_dt(value, days) == expected


def test_descriptions_are_kept_only_when_made_of_vocabulary():
    assert clean_description("CT THORAX-ABDOMEN") == "CT THORAX-ABDOMEN"
    assert clean_description("TC torace addome mdc 2.5 mm") == "TC torace addome mdc 2.5 mm"
    assert clean_description("PET WB AC") == "PET WB AC"
    assert clean_description("CT B30f 3mm", extra_words=["B30f"]) == "CT B30f 3mm"
    for bad in ("PET ROSSI MARIA", "CT 998877", "IBSI_1_STS_001_PET", "CT THORAX 20191113", "", None):
        assert clean_description(bad) is None, bad


def test_suv_is_identical_after_deidentification_for_every_dro_and_real_slice(shared_data):
    folders = sorted((shared_data / "suv_dro_oncoray" / "DRO").glob("DRO_*/PT"))
    assert len(folders) == 17
    series = [sorted(f.glob("*.dcm")) for f in folders]
    series += [
        [shared_data / SIEMENS],
        sorted((shared_data / "petct_sts_001" / "PET" / "image").glob("*.dcm")),
    ]
    for files in series:
        originals = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
        before = compute_suv(originals)
        copies = [deidentified_copy(ds, CTX) for ds in originals]
        after = compute_suv([c for c, _ in copies])
        assert before.error is None and after.error is None, (files[0], after.error)
        uid_map = {}
        for _, report in copies:
            uid_map.update(report.uid_map)
        assert {uid_map[uid]: f for uid, f in before.suvbw_factors.items()} == after.suvbw_factors, files[0]
        assert after.method == before.method and after.other_factors.keys() == before.other_factors.keys()


def test_comunix_weight_zero_stays_refused_after_deidentification(shared_data):
    files = sorted((shared_data / "pet_bqml_orthanc" / "comunix_petct" / "PET").glob("*.dcm"))
    copies = [deidentified_copy(pydicom.dcmread(f, stop_before_pixels=True), CTX)[0] for f in files]
    assert "weight" in compute_suv(copies).error.lower()


def test_private_dates_without_creator_are_shifted_and_junk_private_removed(shared_data):
    files = sorted((shared_data / "suv_dro_oncoray" / "DRO" / "DRO_3_3" / "PT").glob("*.dcm"))
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert ds[0x0009, 0x100D].value == "20250101110000.000000"
    ds.add_new(0x00091010, "LO", "ROSSI^MARIA")  # same block, no creator: not an SUV tag -> removed
    out, report = deidentified_copy(ds, CTX)
    assert out[0x0009, 0x100D].value == "20220407110000.000000"
    assert (0x0009, 0x1010) not in out and report.private_kept == ["(0009,100D) (no private creator)"]


def test_burned_in_annotation_flag(shared_data):
    ds = pydicom.dcmread(shared_data / SIEMENS, stop_before_pixels=True)
    assert not has_burned_in_annotation(ds)
    ds.BurnedInAnnotation = "YES"
    assert has_burned_in_annotation(ds)


def test_rule_lists_name_real_attributes():
    for keyword in (
        rules.SAFE_TEXT
        | rules.SAFE_SEQUENCES
        | rules.SAFE_BINARY
        | rules.REMOVE
        | rules.EMPTY
        | rules.REPLACED
        | rules.NOT_PATIENT_DATES
        | set(rules.IDENTIFYING_KEYWORDS)
    ):
        assert tag_for_keyword(keyword) is not None, keyword
    assert all(dictionary_VR(tag_for_keyword(k)) == "SQ" for k in rules.SAFE_SEQUENCES)


def test_deidentify_in_place_records_counts(shared_data):
    ds = _planted(shared_data)
    report = deidentify(ds, CTX)
    assert report.removed >= 15 and report.uids_replaced >= 5 and report.dates_shifted >= 6
    assert report.emptied == 4  # birth date, accession number, referring physician, study ID


# ------------------------------------------------------------------------------------ leak check
def test_leak_check_finds_identifiers_by_label_on_word_boundaries(shared_data):
    values = identifying_values(_planted(shared_data))
    assert values["PatientName"] == {"ROSSI^MARIA"} and values["PatientName (part)"] == {"ROSSI", "MARIA"}
    assert values["PatientID"] == {"PZ-998877"} and values["OtherPatientIDsSequence"] == {"PZ-998877"}
    check = LeakCheck({**values, "original UID": {"1.2.3.4.5"}})
    assert check.find(b"name: rossi^maria") == {"PatientName"}
    assert check.find("accession ACC-55501") == {"AccessionNumber"}
    assert check.find(b"uid 1.2.3.4.5\0") == {"original UID"}
    assert check.find(b"Dr. Maria") == {"PatientName (part)"}
    assert check.find(b"uid 1.2.3.4.56 and 11.2.3.4.5 and ROSSINI") == set()  # other UIDs, other names
    assert LeakCheck({"PatientID": {"12"}}).find(b"12") == set()  # too short to check reliably
    assert uid_present(b"\x00UI1.2.3.4\x00", "1.2.3.4") and uid_present(b"1.2.3.4", "1.2.3.4")
    assert not uid_present(b"1.2.3.45 and 11.2.3.4 and 1.2.3.4.5", "1.2.3.4")


# ------------------------------------------------------------------------------------ key table
def test_key_table_keeps_salt_shift_and_links(tmp_path):
    with KeyTable.open(tmp_path) as keys:
        salt = keys.salt
        shift = keys.date_shift_days("IT03-0001")
        keys.link("PZ-998877", "IT03-0001")
        keys.link("PZ-998877", "IT03-0001")  # idempotent
        with pytest.raises(KeyTableError, match="already enrolled as IT03-0001"):
            keys.link("PZ-998877", "IT03-0002")
        fingerprint = keys.fingerprint("1.2.3")
    assert len(salt) == 32 and -3650 <= shift <= -365
    if os.name == "posix":
        assert stat.S_IMODE((tmp_path / "keys.db").stat().st_mode) == 0o600
    with KeyTable.open(tmp_path) as keys:
        assert keys.salt == salt and keys.date_shift_days("IT03-0001") == shift
        assert keys.subject_for_patient("PZ-998877") == "IT03-0001" and keys.patient_count("IT03-0001") == 1
        assert keys.subject_for_patient("other") is None and keys.fingerprint("1.2.3") == fingerprint
    with KeyTable.open(tmp_path / "..") as elsewhere:  # another store: another salt
        assert elsewhere.salt != salt

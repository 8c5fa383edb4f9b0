"""De-identification of one DICOM dataset: DICOM PS3.15 Annex E, as PALMARES applies it.

Profile and options (recorded in the dataset, DeidentificationMethodCodeSequence):
  113100 Basic Application Level Confidentiality Profile
  113108 Retain Patient Characteristics: ONLY sex, age (capped at 90 years), size and weight, the
         inputs of SUVbw/SUVlbm/SUVbsa; birth date, ethnic group, pregnancy etc. are removed.
  113107 Retain Longitudinal Temporal Information with Modified Dates: every date (DA and the date
         part of DT, incl. RadiopharmaceuticalStartDateTime and the GE private scan datetime) moves
         by the subject's whole-day shift; times are kept. All SUV decay intervals stay identical.
  113111 Retain Safe Private (only when present): the PET SUV private tags (Philips 7053,xx00/xx09,
         GE 0009,xx0D) with a verified private creator; every other private tag is removed.
  113105 Clean Descriptors (only when used): a study/series description is kept only if every
         word is in a radiology vocabulary ("CT THORAX-ABDOMEN"); otherwise the series description
         is generated from kept technical attributes ("CT SOFT 3.27 mm") and the study one removed.
UIDs: every instance UID (study, series, SOP, frame of reference, referenced UIDs inside kept
sequences, ...) is replaced by 2.25.<int> from an HMAC-SHA256 of the original under the secret site
salt: the same original always gives the same replacement at this site, and nobody without the salt
can recompute it. Class UIDs (SOP class, transfer syntax) are kept.
The rules are an allow-list (see `deid_rules.py`): what is not known to be safe is removed.
Burned-in annotation: `has_burned_in_annotation` lets the importer refuse such images; pixels are
never altered here.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from palmares_desktop import __version__
from palmares_desktop.core.dicom import deid_rules as rules
from palmares_desktop.core.dicom.leaks import LeakCheck


@dataclass(frozen=True)
class DeidContext:
    """What is needed to de-identify a subject's datasets consistently."""

    subject_code: str
    date_shift_days: int
    salt: bytes


@dataclass
class DeidReport:
    """What was done to one dataset (counts and names only, never values)."""

    removed: int = 0
    emptied: int = 0
    uids_replaced: int = 0
    dates_shifted: int = 0
    private_kept: list[str] = field(default_factory=list)
    descriptors_kept: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)  # kept text attributes dropped: they named the patient
    original_uids: set[str] = field(default_factory=set)  # for the leak check; never stored
    uid_map: dict[str, str] = field(default_factory=dict)  # original -> pseudonymous; never stored


# ------------------------------------------------------------------------------ building blocks
def pseudonymous_uid(uid: str, salt: bytes) -> str:
    """The site's replacement for `uid`: 2.25.<int> of a UUID (version 8) made from an HMAC."""
    digest = hmac.new(salt, b"uid\0" + uid.strip().encode("ascii", "replace"), hashlib.sha256).digest()
    n = int.from_bytes(digest[:16], "big")
    n = (n & ~(0xF << 76)) | (0x8 << 76)  # UUID version 8 (custom), RFC 9562
    n = (n & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122/9562 variant
    return f"2.25.{n}"


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value ('YYYYMMDD', legacy 'YYYY.MM.DD'); None when it is not a date."""
    text = value.strip().replace(".", "")
    if not text:
        return ""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:])) + timedelta(days=days)
    except ValueError:
        return None
    return moved.strftime("%Y%m%d")


_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping its precision, time and UTC offset."""
    text = value.strip()
    if not text:
        return ""
    match = _DT.match(text)
    if not match:
        return None
    year, month, day, rest = match.groups()
    try:
        moved = date(int(year), int(month or 1), int(day or 1)) + timedelta(days=days)
    except ValueError:
        return None
    shifted = moved.strftime("%Y%m%d")[: 4 + len(month or "") + len(day or "")]
    return shifted + rest


def _cap_age(value: str) -> str:
    # Ages above 89 years are rare enough to help identify someone (HIPAA safe harbour): cap them.
    text = value.strip()
    if len(text) == 4 and text[:3].isdigit() and text[3] == "Y" and int(text[:3]) > 89:
        return "090Y"
    return text


_TOKEN_SPLIT = re.compile(r"[^A-Z0-9.,]+")
_NUMBER_WITH_UNIT = re.compile(
    r"^(\d{1,2}([.,]\d{1,3})?|\d{1,3}[.,]\d{1,3}|\d{1,3}(MM|CM|KV|KVP|MAS|S|SEC|MIN))$"
)


def clean_description(text: str | None, extra_words: Iterable[str] = ()) -> str | None:
    """`text` when every word is radiology vocabulary (or in `extra_words`, e.g. the kernel), else None."""
    if not text or not str(text).strip():
        return None
    text = str(text).strip()
    if len(text) > 64:
        return None
    allowed = rules.DESCRIPTION_VOCABULARY | {w.upper() for w in extra_words if w}
    tokens = [t.strip(".,") for t in _TOKEN_SPLIT.split(text.upper())]
    tokens = [t for t in tokens if t]
    if not tokens:
        return None
    if all(t in allowed or _NUMBER_WITH_UNIT.match(t) for t in tokens):
        return text
    return None


def _first(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return str(value[0]) if len(value) else ""
    return str(value)


def describe_series(ds: Dataset) -> str:
    """A description made only of kept technical attributes, e.g. 'CT SOFT 3.27 mm', 'PT BQML AC 3 mm'."""
    parts = [str(ds.get("Modality", "") or "")]
    if parts[0] == "PT":
        parts.append(str(ds.get("Units", "") or ""))
        corrected = [str(c).upper() for c in (ds.get("CorrectedImage") or [])]
        parts.append("AC" if "ATTN" in corrected else "NAC")
    kernel = _first(ds.get("ConvolutionKernel"))
    if kernel and re.fullmatch(r"[A-Za-z0-9 ._-]{1,16}", kernel):
        parts.append(kernel)
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        parts.append(f"{float(ds.SliceThickness):g} mm")
    return " ".join(p for p in parts if p)


def has_burned_in_annotation(ds: Dataset) -> bool:
    """True when the dataset declares text burned into its pixels (0028,0301 = YES)."""
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"


PART = " (part)"  # label suffix of a part of a name (family name, given name...)


def identifying_values(ds: Dataset) -> dict[str, set[str]]:
    """Original identifying values of `ds` for leak checks: keyword -> values of at least 4
    characters. Parts of person names come under "<keyword> (part)" (see `PART`)."""
    found: dict[str, set[str]] = {}

    def add(label: str, raw) -> None:
        for value in raw if isinstance(raw, (list, tuple, pydicom.multival.MultiValue)) else [raw]:
            text = str(value).strip()
            if len(text) >= 4:
                found.setdefault(label, set()).add(text)
            if label.endswith(("Name", "Names", "Physician", "PhysiciansOfRecord")):
                for part in re.split(r"[\^=]", text):
                    if len(part.strip()) >= 4 and part.strip() != text:
                        found.setdefault(label + PART, set()).add(part.strip())

    for keyword in rules.IDENTIFYING_KEYWORDS:
        value = ds.get(keyword)
        if value not in (None, ""):
            add(keyword, value)
    for item in ds.get("OtherPatientIDsSequence") or []:
        if item.get("PatientID"):
            add("OtherPatientIDsSequence", item.PatientID)
    return found


# ------------------------------------------------------------------------------ the walk
def _private_key(ds: Dataset, tag: Tag) -> tuple[str, int, int] | None:
    creator_elem = ds.get(Tag(tag.group, tag.element >> 8))
    if creator_elem is None:
        return None
    creator = creator_elem.value
    if isinstance(creator, bytes):
        creator = creator.decode("ascii", "replace")
    return (str(creator).strip().rstrip("\0").strip(), tag.group, tag.element & 0xFF)


def _is_safe_creator(ds: Dataset, tag: Tag) -> bool:
    value = ds[tag].value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    creator = str(value).strip().rstrip("\0").strip()
    return any(creator == c and tag.group == g for c, g, _ in rules.SAFE_PRIVATE)


_DT_VALUE = re.compile(r"^\d{8,14}(\.\d{1,6})?([+-]\d{4})?$")


def _valid_private_value(text: str, vr: str) -> bool:
    if vr == "DT":
        return bool(_DT_VALUE.match(text)) and shift_dt(text, 0) is not None
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _is_binary_number(raw, vr: str) -> bool:
    # Private DS values read as UN sometimes hold a little-endian float instead of text.
    if vr != "DS" or not isinstance(raw, bytes) or len(raw) not in (4, 8):
        return False
    value = struct.unpack("<f" if len(raw) == 4 else "<d", raw)[0]
    return math.isfinite(value)


def _shift_values(values: list[str], shifter, days: int) -> list[str] | None:
    out = []
    for v in values:
        moved = shifter(str(v), days)
        if moved is None:
            return None
        out.append(moved)
    return out


class _Walker:
    def __init__(self, ctx: DeidContext, report: DeidReport) -> None:
        self.ctx = ctx
        self.report = report

    def uid(self, value: str) -> str:
        value = str(value).strip().rstrip("\0")
        if not value or value.startswith(rules.STANDARD_UID_ROOT):
            return value
        new = self.report.uid_map.get(value) or pseudonymous_uid(value, self.ctx.salt)
        self.report.uid_map[value] = new
        self.report.original_uids.add(value)
        self.report.uids_replaced += 1
        return new

    def remove(self, ds: Dataset, tag: Tag) -> None:
        del ds[tag]
        self.report.removed += 1

    def clean(self, ds: Dataset, top: bool) -> None:
        for tag in list(ds.keys()):
            elem = ds[tag]
            if tag.is_private:
                self.private(ds, tag)
                continue
            if tag.element == 0 or (tag.group & 0xFF00) in (0x5000, 0x6000):
                self.remove(ds, tag)  # group lengths (stale after editing), curves and overlays
                continue
            keyword, vr = elem.keyword, elem.VR
            if top and keyword in rules.REPLACED:
                continue
            if keyword in rules.REMOVE:
                self.remove(ds, tag)
            elif keyword in rules.EMPTY:
                elem.value = None if vr == "SQ" else ""
                self.report.emptied += 1
            elif vr == "SQ":
                if keyword in rules.SAFE_SEQUENCES:
                    for item in elem.value:
                        self.clean(item, top=False)
                else:
                    self.remove(ds, tag)
            elif vr == "UI":
                self.uid_element(ds, tag, keyword)
            elif vr in ("DA", "DT"):
                self.date_element(ds, tag, keyword, vr)
            elif (
                vr == "PN"
                or vr in rules.TEXT_VRS
                and keyword not in rules.SAFE_TEXT
                or vr in rules.BINARY_VRS
                and keyword not in rules.SAFE_BINARY
            ):
                self.remove(ds, tag)
            elif vr == "AS" and elem.value:
                elem.value = _cap_age(str(elem.value))
            # every other element (numbers, code strings, tags, times) is kept as is

    def uid_element(self, ds: Dataset, tag: Tag, keyword: str) -> None:
        elem = ds[tag]
        if (
            keyword.endswith(rules.CLASS_UID_SUFFIXES)
            or keyword in rules.CLASS_UID_KEYWORDS
            or not elem.value
        ):
            return
        if elem.VM > 1:
            elem.value = [self.uid(v) for v in elem.value]
        else:
            elem.value = self.uid(elem.value)

    def date_element(self, ds: Dataset, tag: Tag, keyword: str, vr: str) -> None:
        elem = ds[tag]
        if keyword in rules.NOT_PATIENT_DATES or not elem.value:
            return
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        moved = _shift_values(values, shift_da if vr == "DA" else shift_dt, self.ctx.date_shift_days)
        if moved is None:  # not a valid date: it cannot be shifted, so it cannot be kept
            self.remove(ds, tag)
            return
        elem.value = moved if elem.VM > 1 else moved[0]
        self.report.dates_shifted += 1

    def private(self, ds: Dataset, tag: Tag) -> None:
        if 0x10 <= tag.element <= 0xFF:  # private creator element
            if not _is_safe_creator(ds, tag):
                self.remove(ds, tag)
            return
        key = _private_key(ds, tag)
        vr = rules.SAFE_PRIVATE.get(key) if key else None
        if key is None and (tag.group, tag.element) in rules.SAFE_PRIVATE_WITHOUT_CREATOR:
            # Some writers (e.g. the oncoray SUV phantoms) omit the private creator. The fixed tag
            # is still what SUV readers look up, and a value that parses as a number or a
            # date-time cannot carry a name, so it is kept after validation.
            key = ("(no private creator)", tag.group, tag.element & 0xFF)
            vr = rules.SAFE_PRIVATE_WITHOUT_CREATOR[(tag.group, tag.element)]
        elem = ds[tag]
        raw = elem.value
        text = (raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)).strip("\0 ")
        if vr is None or not (_valid_private_value(text, vr) or _is_binary_number(raw, vr)):
            self.remove(ds, tag)
            return
        if vr == "DT":
            moved = shift_dt(text, self.ctx.date_shift_days)
            if isinstance(raw, bytes):
                encoded = moved.encode("ascii")
                elem.value = encoded + b" " * (len(encoded) % 2)
            else:
                elem.value = moved
            self.report.dates_shifted += 1
        self.report.private_kept.append(f"({tag.group:04X},{tag.element:04X}) {key[0]}")


# ------------------------------------------------------------------------------ public entry points
_METHOD_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113105": "Clean Descriptors Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113111": "Retain Safe Private Option",
}


def _method_code_sequence(codes: list[str]) -> Sequence:
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = _METHOD_CODES[code]
        items.append(item)
    return Sequence(items)


# Kept value representations that can hold words; each kept value is checked against the patient.
_WORD_VRS = frozenset({"CS", "SH", "LO", "ST", "LT", "UT", "UC", "AE", "UR"})


def _is_vocabulary(text: str) -> bool:
    terms = rules.DEFINED_TERMS | rules.DESCRIPTION_VOCABULARY
    tokens = [t.strip(".,") for t in _TOKEN_SPLIT.split(text.upper())]
    return all(not t or t in terms or _NUMBER_WITH_UNIT.match(t) for t in tokens)


def _names_the_patient(check: LeakCheck, value) -> bool:
    text = str(value).strip()
    return bool(text) and not _is_vocabulary(text) and bool(check.find(text))


# Labels of `identifying_values` that belong to the patient (not to the institution or its staff).
_PATIENT_LABELS = ("Patient", "OtherPatient", "MedicalRecordLocator", "AccessionNumber")


class KeptTextCheck:
    """The patient's identifying values, as looked for in kept texts. Device-written texts
    (DEVICE_TEXT) are checked against the patient's values only: software often writes its own
    name into InstitutionName too ("CERR" in the IBSI lung phantom), which is no leak."""

    def __init__(self, identifiers: dict[str, set[str]]) -> None:
        self.everything = LeakCheck(identifiers)
        self.patient = LeakCheck({k: v for k, v in identifiers.items() if k.startswith(_PATIENT_LABELS)})

    def names_the_patient(self, keyword: str, value) -> bool:
        return _names_the_patient(self.patient if keyword in rules.DEVICE_TEXT else self.everything, value)


def clean_kept_texts(ds: Dataset, check: KeptTextCheck, report: DeidReport) -> None:
    """Drop every kept text value in which an identifying value of the patient appears (a name part
    typed into BodyPartExamined or ConvolutionKernel, an ID in a code...). Of a multi-valued
    attribute only the offending values go; an attribute left empty is removed. Values made only
    of the standard's vocabulary are kept (see DEFINED_TERMS)."""
    for elem in list(ds.iterall()):
        if elem.VR not in _WORD_VRS or not elem.value or elem.keyword in rules.REPLACED:
            continue
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        kept = [v for v in values if not check.names_the_patient(elem.keyword, v)]
        if len(kept) == len(values):
            continue
        report.cleaned.append(elem.keyword or str(elem.tag))
        if kept:
            elem.value = kept if len(kept) > 1 else kept[0]
        else:
            elem.value = ""  # emptied here, removed below (we are iterating over the dataset)
    _remove_emptied(ds, set(report.cleaned))


def _remove_emptied(ds: Dataset, keywords: set[str]) -> None:
    for tag in list(ds.keys()):
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                _remove_emptied(item, keywords)
        elif (elem.keyword or str(elem.tag)) in keywords and elem.value in ("", None):
            del ds[tag]


def deidentify(ds: Dataset, ctx: DeidContext) -> DeidReport:
    """De-identify `ds` IN PLACE (header and file meta; pixels untouched). Returns what was done."""
    report = DeidReport()
    check = KeptTextCheck(identifying_values(ds))  # the ORIGINAL values, read before anything goes

    _Walker(ctx, report).clean(ds, top=True)
    clean_kept_texts(ds, check, report)

    # Descriptions: vocabulary only, never a word naming the patient; generated from what was kept.
    kernel_words = _first(ds.get("ConvolutionKernel")).split()
    series_description = clean_description(ds.get("SeriesDescription"), kernel_words)
    if series_description and check.everything.find(series_description):
        series_description = None
    study_description = clean_description(ds.get("StudyDescription"))
    if study_description and check.everything.find(study_description):
        study_description = None
    generated = describe_series(ds)

    ds.PatientName = ctx.subject_code
    ds.PatientID = ctx.subject_code
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.SeriesDescription = series_description or generated
    if series_description:
        report.descriptors_kept.append("SeriesDescription")
    if study_description:
        ds.StudyDescription = study_description
        report.descriptors_kept.append("StudyDescription")
    elif "StudyDescription" in ds:
        del ds.StudyDescription
    codes = ["113100", "113107", "113108"]
    if report.descriptors_kept:
        codes.append("113105")
    if report.private_kept:
        codes.append("113111")
    ds.DeidentificationMethod = [
        f"PALMARES Desktop {__version__}",
        "DICOM PS3.15 Annex E Basic Profile",
        "Patient characteristics kept: sex, age, size, weight",
        "Dates shifted by a per-subject number of days",
        "UIDs replaced by salted HMAC (2.25)",
        "Private tags removed except PET SUV tags",
    ]
    ds.DeidentificationMethodCodeSequence = _method_code_sequence(sorted(codes))

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        new_meta = FileMetaDataset()
        new_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        new_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        new_meta.TransferSyntaxUID = meta.TransferSyntaxUID
        new_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        new_meta.ImplementationVersionName = f"PALMARES_{__version__}"[:16]
        ds.file_meta = new_meta
    ds.preamble = b"\0" * 128  # a preamble can carry anything (e.g. a TIFF header)
    return report


def deidentified_copy(ds: Dataset, ctx: DeidContext) -> tuple[Dataset, DeidReport]:
    """A de-identified deep copy of `ds`; the original is left untouched."""
    out = copy.deepcopy(ds)
    return out, deidentify(out, ctx)

"""The per-slice PET header record the SUV engine works on, and the adapters that build it.

`PetSliceHeader` holds exactly the attributes DOMAIN.md §1 lists, already pulled out of sequences,
functional groups and private blocks, so the SUV algorithm does not care where they came from:
- `header_from_dataset(ds)`: a pydicom Dataset (classic PET Image or Enhanced PET Image);
- `header_from_keyword_dict(meta, ...)`: a mapping keyed by DICOM keywords, the shape of cornerstone /
  OHIF instance metadata and of JSON sidecars (used by the calculate-suv fixtures).
Dates and times stay DICOM text (the engine parses them and names the attribute when one is bad);
numbers become floats, or None when missing or unreadable.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.tag import Tag

PHILIPS_PET_PRIVATE_CREATOR = "Philips PET Private Group"
PHILIPS_GROUP = 0x7053
PHILIPS_SUV_SCALE_OFFSET = 0x00  # (7053,xx00) SUV Scale Factor
PHILIPS_ACTIVITY_SCALE_OFFSET = 0x09  # (7053,xx09) Activity Concentration Scale Factor
GE_PET_PRIVATE_CREATOR = "GEMS_PETD_01"
GE_GROUP = 0x0009
GE_SCAN_DATETIME_OFFSET = 0x0D  # (0009,xx0D) scan (post-injection) DateTime
ENHANCED_PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.130"

# Enhanced PET stores units as UCUM codes (CID 84/85) instead of the Units attribute.
_UCUM_UNITS = {
    "bq/ml": ("BQML", None),
    "{suvbw}g/ml": ("GML", "BW"),
    "{suvlbm}g/ml": ("GML", "LBM"),
    "{suvlbm(james128)}g/ml": ("GML", "LBMJAMES128"),
    "{suvlbm(janma)}g/ml": ("GML", "LBMJANMA"),
    "{suvibw}g/ml": ("GML", "IBW"),
    "{suvbsa}cm2/ml": ("CM2ML", "BSA"),
    "cm2/ml": ("CM2ML", "BSA"),
    "{counts}": ("CNTS", None),
    "{counts}/s": ("CPS", None),
}


@dataclass(frozen=True)
class PetSliceHeader:
    """SUV-relevant attributes of one PET image (one slice, or one Enhanced PET instance)."""

    sop_instance_uid: str
    series_instance_uid: str | None = None
    manufacturer: str | None = None
    units: str | None = None  # (0054,1001)
    suv_type: str | None = None  # (0054,1006)
    corrected_image: tuple[str, ...] = ()  # (0028,0051)
    decay_correction: str | None = None  # (0054,1102) START / ADMIN / NONE
    enhanced_decay_corrected: str | None = None  # (0018,9758) YES / NO, Enhanced PET only
    enhanced_attenuation_corrected: str | None = None  # (0018,9759) YES / NO, Enhanced PET only
    decay_correction_datetime: str | None = None  # (0018,9701) Enhanced PET reference time
    rescale_slope: float | None = None
    rescale_intercept: float | None = None
    series_date: str | None = None
    series_time: str | None = None
    acquisition_date: str | None = None
    acquisition_time: str | None = None
    acquisition_datetime: str | None = None  # (0008,002A) or Enhanced FrameAcquisitionDateTime
    frame_reference_time_ms: float | None = None  # (0054,1300)
    actual_frame_duration_ms: float | None = None  # (0018,1242)
    radiopharmaceutical_start_datetime: str | None = None  # (0018,1078)
    radiopharmaceutical_start_time: str | None = None  # (0018,1072)
    radionuclide_total_dose: float | None = None  # (0018,1074), should be Bq
    radionuclide_half_life_s: float | None = None  # (0018,1075)
    patient_weight_kg: float | None = None
    patient_size_m: float | None = None
    patient_sex: str | None = None
    dose_calibration_factor: float | None = None  # (0054,1322), for Units CPS
    philips_suv_scale_factor: float | None = None
    philips_activity_concentration_scale_factor: float | None = None
    ge_scan_datetime: str | None = None
    distinct_frame_times: int = 1  # Enhanced PET: frames acquired at different times in this instance
    # Weight/dose written in the header but not as a number (e.g. "80,8" with a decimal comma):
    # kept as text so a refusal can say so instead of "missing".
    patient_weight_text: str | None = None
    radionuclide_total_dose_text: str | None = None


def to_float(value: object) -> float | None:
    """A DS/IS/FL/FD value, a number, DS text or raw bytes (VR UN: DS text or binary float) as float."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return _float_from_bytes(bytes(value))
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return to_float(value[0]) if len(value) else None
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _float_from_bytes(raw: bytes) -> float | None:
    # Private elements read without their dictionary come back as VR UN bytes: DS text first,
    # then a little-endian FL (4 bytes) or FD (8 bytes), the encodings vendors use for these tags.
    text = raw.rstrip(b"\x00 ").decode("ascii", errors="replace").strip()
    try:
        return float(text.split("\\")[0])
    except ValueError:
        pass
    if len(raw) in (4, 8):
        number = struct.unpack("<f" if len(raw) == 4 else "<d", raw)[0]
        return None if math.isnan(number) or math.isinf(number) else float(number)
    return None


def _unreadable_number(value: object) -> str | None:
    """The text of a value that is present but is not a number, else None."""
    text = _text(value)
    return text if text is not None and to_float(value) is None else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).rstrip(b"\x00").decode("ascii", errors="replace")
    text = str(value).strip()
    return text or None


def _code_strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = value.split("\\")
    elif isinstance(value, (bytes, bytearray)):
        parts = bytes(value).decode("ascii", errors="replace").split("\\")
    else:
        parts = [str(v) for v in value]
    return tuple(p.strip().upper() for p in parts if p and p.strip())


def _private_value(ds: Dataset, group: int, creator: str, offset: int) -> object:
    """Value of private element `offset` in the block reserved by `creator`, or None.

    When the group holds no private-creator element at all (some anonymisers and the IBSI DROs keep
    only the data element), the conventional block 0x10 is read; a block owned by another creator is
    never read.
    """
    found_any_creator = False
    for block in range(0x10, 0x100):
        creator_tag = Tag(group, block)
        if creator_tag not in ds:
            continue
        found_any_creator = True
        if (_text(ds[creator_tag].value) or "").lower() == creator.lower():
            data_tag = Tag(group, (block << 8) | offset)
            return ds[data_tag].value if data_tag in ds else None
    if not found_any_creator:
        data_tag = Tag(group, 0x1000 | offset)
        if data_tag in ds:
            return ds[data_tag].value
    return None


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _functional_group_value(ds: Dataset, macro: str, keyword: str) -> object:
    """Attribute from the Shared, else the first Per-frame, functional group macro of an Enhanced image."""
    for groups_keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = _first_item(ds, groups_keyword)
        item = _first_item(groups, macro) if groups is not None else None
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _frame_acquisitions(ds: Dataset) -> list[str]:
    values = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence") or []:
        content = _first_item(frame, "FrameContentSequence")
        text = _text(content.get("FrameAcquisitionDateTime")) if content is not None else None
        if text:
            values.append(text)
    return values


def _enhanced_units(ds: Dataset) -> tuple[str | None, str | None]:
    mapping = _functional_group_value(ds, "RealWorldValueMappingSequence", "MeasurementUnitsCodeSequence")
    if mapping:
        code = _text(mapping[0].get("CodeValue")) or ""
        return _UCUM_UNITS.get(code.lower(), (code or None, None))
    return None, None


def header_from_dataset(ds: Dataset) -> PetSliceHeader:
    """Build the header record from a pydicom Dataset (classic or Enhanced PET). Never raises on bad values."""
    radiopharm = _first_item(ds, "RadiopharmaceuticalInformationSequence") or Dataset()
    enhanced = (
        str(ds.get("SOPClassUID", "")) == ENHANCED_PET_SOP_CLASS or "PerFrameFunctionalGroupsSequence" in ds
    )
    units, suv_type = _text(ds.get("Units")), _text(ds.get("SUVType"))
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    acquisition_datetime = _text(ds.get("AcquisitionDateTime"))
    frame_times: list[str] = []
    frame_duration = ds.get("ActualFrameDuration")
    if enhanced:
        if units is None:
            units, coded_suv_type = _enhanced_units(ds)
            suv_type = suv_type or coded_suv_type
        if slope is None:
            slope = _functional_group_value(ds, "PixelValueTransformationSequence", "RescaleSlope")
            intercept = _functional_group_value(ds, "PixelValueTransformationSequence", "RescaleIntercept")
        frame_times = _frame_acquisitions(ds)
        # DT text of equal precision sorts chronologically; enough to pick the first frame.
        acquisition_datetime = min(frame_times) if frame_times else acquisition_datetime
        if frame_duration is None:
            frame_duration = _functional_group_value(ds, "FrameContentSequence", "FrameAcquisitionDuration")
    return PetSliceHeader(
        sop_instance_uid=_text(ds.get("SOPInstanceUID")) or "",
        series_instance_uid=_text(ds.get("SeriesInstanceUID")),
        manufacturer=_text(ds.get("Manufacturer")),
        units=units.upper() if units else None,
        suv_type=suv_type.upper() if suv_type else None,
        corrected_image=_code_strings(ds.get("CorrectedImage")),
        decay_correction=(_text(ds.get("DecayCorrection")) or "").upper() or None,
        enhanced_decay_corrected=(_text(ds.get("DecayCorrected")) or "").upper() or None,
        enhanced_attenuation_corrected=(_text(ds.get("AttenuationCorrected")) or "").upper() or None,
        decay_correction_datetime=_text(ds.get("DecayCorrectionDateTime")),
        rescale_slope=to_float(slope),
        rescale_intercept=to_float(intercept),
        series_date=_text(ds.get("SeriesDate")),
        series_time=_text(ds.get("SeriesTime")),
        acquisition_date=_text(ds.get("AcquisitionDate")),
        acquisition_time=_text(ds.get("AcquisitionTime")),
        acquisition_datetime=acquisition_datetime,
        frame_reference_time_ms=to_float(ds.get("FrameReferenceTime")),
        actual_frame_duration_ms=to_float(frame_duration),
        radiopharmaceutical_start_datetime=_text(radiopharm.get("RadiopharmaceuticalStartDateTime")),
        radiopharmaceutical_start_time=_text(radiopharm.get("RadiopharmaceuticalStartTime")),
        radionuclide_total_dose=to_float(radiopharm.get("RadionuclideTotalDose")),
        radionuclide_half_life_s=to_float(radiopharm.get("RadionuclideHalfLife")),
        patient_weight_kg=to_float(ds.get("PatientWeight")),
        patient_weight_text=_unreadable_number(ds.get("PatientWeight")),
        radionuclide_total_dose_text=_unreadable_number(radiopharm.get("RadionuclideTotalDose")),
        patient_size_m=to_float(ds.get("PatientSize")),
        patient_sex=(_text(ds.get("PatientSex")) or "").upper() or None,
        dose_calibration_factor=to_float(ds.get("DoseCalibrationFactor")),
        philips_suv_scale_factor=to_float(
            _private_value(ds, PHILIPS_GROUP, PHILIPS_PET_PRIVATE_CREATOR, PHILIPS_SUV_SCALE_OFFSET)
        ),
        philips_activity_concentration_scale_factor=to_float(
            _private_value(ds, PHILIPS_GROUP, PHILIPS_PET_PRIVATE_CREATOR, PHILIPS_ACTIVITY_SCALE_OFFSET)
        ),
        ge_scan_datetime=_text(_private_value(ds, GE_GROUP, GE_PET_PRIVATE_CREATOR, GE_SCAN_DATETIME_OFFSET)),
        distinct_frame_times=max(1, len(set(frame_times))),
    )


def header_from_keyword_dict(meta: Mapping[str, object], sop_instance_uid: str) -> PetSliceHeader:
    """Build the header from a mapping keyed by DICOM keywords (cornerstone/OHIF instance metadata).

    The radiopharmaceutical attributes may sit at the top level (cornerstone flattens them) or in a
    `RadiopharmaceuticalInformationSequence` list; vendor private values use cornerstone's names
    (`PhilipsPETPrivateGroup.SUVScaleFactor` / `.ActivityConcentrationScaleFactor`,
    `GEPrivatePostInjectionDateTime`). `sop_instance_uid` is used when the mapping has none.
    """
    sequence = meta.get("RadiopharmaceuticalInformationSequence")
    radiopharm: Mapping[str, object] = sequence[0] if isinstance(sequence, list) and sequence else {}

    def pick(keyword: str) -> object:
        return radiopharm.get(keyword, meta.get(keyword))

    philips = meta.get("PhilipsPETPrivateGroup") or {}
    return PetSliceHeader(
        sop_instance_uid=_text(meta.get("SOPInstanceUID")) or sop_instance_uid,
        series_instance_uid=_text(meta.get("SeriesInstanceUID")),
        manufacturer=_text(meta.get("Manufacturer")),
        units=(_text(meta.get("Units")) or "").upper() or None,
        suv_type=(_text(meta.get("SUVType")) or "").upper() or None,
        corrected_image=_code_strings(meta.get("CorrectedImage")),
        decay_correction=(_text(meta.get("DecayCorrection")) or "").upper() or None,
        rescale_slope=to_float(meta.get("RescaleSlope")),
        rescale_intercept=to_float(meta.get("RescaleIntercept")),
        series_date=_text(meta.get("SeriesDate")),
        series_time=_text(meta.get("SeriesTime")),
        acquisition_date=_text(meta.get("AcquisitionDate")),
        acquisition_time=_text(meta.get("AcquisitionTime")),
        acquisition_datetime=_text(meta.get("AcquisitionDateTime")),
        frame_reference_time_ms=to_float(meta.get("FrameReferenceTime")),
        actual_frame_duration_ms=to_float(meta.get("ActualFrameDuration")),
        radiopharmaceutical_start_datetime=_text(pick("RadiopharmaceuticalStartDateTime")),
        radiopharmaceutical_start_time=_text(pick("RadiopharmaceuticalStartTime")),
        radionuclide_total_dose=to_float(pick("RadionuclideTotalDose")),
        radionuclide_half_life_s=to_float(pick("RadionuclideHalfLife")),
        patient_weight_kg=to_float(meta.get("PatientWeight")),
        patient_size_m=to_float(meta.get("PatientSize")),
        patient_sex=(_text(meta.get("PatientSex")) or "").upper() or None,
        dose_calibration_factor=to_float(meta.get("DoseCalibrationFactor")),
        philips_suv_scale_factor=to_float(philips.get("SUVScaleFactor")),
        philips_activity_concentration_scale_factor=to_float(philips.get("ActivityConcentrationScaleFactor")),
        ge_scan_datetime=_text(meta.get("GEPrivatePostInjectionDateTime")),
    )

"""Write one demo subject as a PACS-style DICOM export: a CT series and an FDG-PET series.

Both series belong to one study and share one FrameOfReferenceUID. CT is int16 with
RescaleIntercept -1024 (HU). PET is uint16 with a per-slice RescaleSlope and carries every tag the
SUV algorithm (DOMAIN.md §1) reads, with one vendor's conventions per subject:

    siemens   Units BQML, DecayCorrection START, SeriesTime == first AcquisitionTime (rule a),
              RadiopharmaceuticalStartDateTime present.
    ge        Units BQML, SeriesTime AFTER the acquisition (series created at reconstruction), so the
              reference time is the GE private scan datetime (0009,100D) "GEMS_PETD_01" (rule b);
              only RadiopharmaceuticalStartTime (no DateTime), as older GE consoles write it.
    philips   Units CNTS with the Philips private SUV scale factor (7053,1000) and activity
              concentration scale factor (7053,1009), creator "Philips PET Private Group".

The PET pixels are computed backwards from the phantom's SUV so that the SUV algorithm recovers
the planted values: BQML pixels are SUV / factor, CNTS pixels are SUV / (7053,1000).
Patient identifiers are fake (DEMO^SUBJECTn) and are there to be removed by the importer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

from palmares_desktop.core.demo.phantom import Grid, Subject, render_ct, render_suv

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
F18_HALF_LIFE_S = 6586.2

# 320 x 320 x 120 CT at 1.5625 x 1.5625 x 2.5 mm (500 mm FOV); 128 x 128 x 75 PET at 4 mm.
# Origins and spacings are exact short decimals so DICOM DS strings round-trip without error.
CT_GRID = Grid((120, 320, 320), (1.5625, 1.5625, 2.5), (-249.21875, -249.21875, -300.0))
PET_GRID = Grid((75, 128, 128), (4.0, 4.0, 4.0), (-254.0, -254.0, -298.0))


@dataclass(frozen=True)
class VendorStyle:
    key: str
    manufacturer: str
    model: str
    study_date: str  # YYYYMMDD
    injection: str  # HHMMSS
    first_acquisition: str  # HHMMSS
    series_delay_s: int  # SeriesTime - first acquisition (GE: > 0)
    bed_seconds: int
    units: str
    start_datetime: bool  # write RadiopharmaceuticalStartDateTime


VENDORS = (
    VendorStyle(
        "siemens", "SIEMENS", "Biograph Vision 600", "20250314", "090230", "100400", 0, 180, "BQML", True
    ),
    VendorStyle(
        "ge", "GE MEDICAL SYSTEMS", "Discovery MI", "20250402", "134000", "144210", 1403, 150, "BQML", False
    ),
    VendorStyle(
        "philips",
        "Philips Medical Systems",
        "Vereos PET/CT",
        "20250520",
        "081500",
        "092000",
        0,
        120,
        "CNTS",
        True,
    ),
)
N_BEDS = 3
PHILIPS_ACTIVITY_FACTOR = 0.0813  # Bq/mL per count: arbitrary, like the scanner's own calibration


def ds_str(value: float, digits: int = 10) -> str:
    """A DICOM DS string (<= 16 characters); callers use float(ds_str(v)) so stored == computed."""
    return f"{value:.{digits}g}"


def suvbw_factor(
    weight_kg: float,
    dose_bq: float,
    t_injection: datetime,
    t_reference: datetime,
    half_life_s: float = F18_HALF_LIFE_S,
) -> float:
    """SUVbw per Bq/mL: weight in g over the dose decayed to the reference time (DOMAIN.md §1)."""
    decayed = dose_bq * 2.0 ** (-(t_reference - t_injection).total_seconds() / half_life_s)
    return weight_kg * 1000.0 / decayed


def frame_reference_ms(
    t_acquisition: datetime, t_reference: datetime, duration_s: float, half_life_s: float = F18_HALF_LIFE_S
) -> float:
    """FrameReferenceTime consistent with the QIBA back-computation (rule c) to t_reference."""
    lam = math.log(2) / half_life_s
    t_ave = math.log(lam * duration_s / (1 - math.exp(-lam * duration_s))) / lam
    return ((t_acquisition - t_reference).total_seconds() + t_ave) * 1000.0


@dataclass
class WrittenSubject:
    """What was written, and the numbers a reader of the files should recover."""

    folder: Path
    study_uid: str
    frame_of_reference_uid: str
    ct_series_uid: str
    pet_series_uid: str
    vendor: str
    units: str
    suv_factor: float  # multiplies the rescaled PET value (Bq/mL, or counts for CNTS) to give SUVbw
    suv_inputs: dict
    ct_hu: np.ndarray  # HU as written (z, y, x)
    pet_suv: np.ndarray  # SUVbw recoverable from the written PET (rescaled value x factor)
    pet_rescaled: np.ndarray  # stored * slope per slice, as written


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["palmares-demo", *map(str, parts)])


def _dt(date: str, time: str) -> datetime:
    return datetime.strptime(date + time, "%Y%m%d%H%M%S")


def _base(
    subject: Subject, style: VendorStyle, uids: dict, modality: str, sop_class: str, sop_uid: str
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    n = subject.index
    # Fake identifiers, as a PACS export would carry real ones: the importer must remove them.
    ds.PatientName = f"DEMO^SUBJECT{n}"
    ds.PatientID = f"DEMO{n:05d}"
    ds.PatientBirthDate = f"{1955 + 4 * n}0{(n % 9) + 1}1{n % 10}"
    ds.PatientSex = "F"
    ds.PatientAge = f"{2025 - 1955 - 4 * n:03d}Y"
    ds.PatientWeight = ds_str(subject.weight_kg)
    ds.PatientSize = ds_str(subject.height_m)
    ds.StudyInstanceUID = uids["study"]
    ds.StudyDate, ds.StudyTime = style.study_date, "095500"
    ds.StudyID = f"{n}"
    ds.AccessionNumber = f"ACC2025{n:05d}"
    ds.StudyDescription = "PET-CT WHOLE BODY FDG"
    ds.ReferringPhysicianName = "DEMO^REFERRER"
    ds.InstitutionName = "Demo General Hospital"
    ds.InstitutionAddress = "1 Example Street, Nowhere"
    ds.StationName = f"DEMO-{style.key.upper()}"
    ds.OperatorsName = "DEMO^TECHNOLOGIST"
    ds.Manufacturer, ds.ManufacturerModelName = style.manufacturer, style.model
    ds.SoftwareVersions = "demo-1.0"
    ds.DeviceSerialNumber = f"{9000 + n}"
    ds.Modality = modality
    ds.FrameOfReferenceUID = uids["for"]
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "WHOLEBODY"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    return ds


def _geometry(ds: Dataset, grid: Grid, k: int) -> None:
    x0, y0, z0 = grid.origin
    z = z0 + k * grid.spacing[2]
    ds.ImagePositionPatient = [ds_str(x0), ds_str(y0), ds_str(z)]
    ds.SliceLocation = ds_str(z)
    ds.PixelSpacing = [ds_str(grid.spacing[1]), ds_str(grid.spacing[0])]  # row spacing (y), column (x)
    ds.SliceThickness = ds_str(grid.spacing[2])
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]


def _write_ct(subject: Subject, style: VendorStyle, uids: dict, folder: Path, hu: np.ndarray) -> None:
    nz = CT_GRID.shape[0]
    for k in range(nz):
        number = nz - k  # instance 1 at the head end, as most consoles number them
        ds = _base(subject, style, uids, "CT", CT_IMAGE_STORAGE, _uid(subject.seed, "ct", k))
        ds.SeriesInstanceUID, ds.SeriesNumber = uids["ct"], 2
        ds.SeriesDescription = "CT WB 2.5mm"
        ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = style.study_date
        ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "095800"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber, ds.AcquisitionNumber = number, 1
        ds.KVP, ds.XRayTubeCurrent, ds.ConvolutionKernel = "120", 80, "B30f"
        _geometry(ds, CT_GRID, k)
        ds.PixelRepresentation = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype("<i2").tobytes()
        ds.save_as(folder / f"IM{number:05d}.dcm", enforce_file_format=True)


def _quantise(values: np.ndarray) -> tuple[np.ndarray, str, float]:
    """uint16 pixels and a per-slice RescaleSlope (as its DS string and the float it reads back as)."""
    peak = float(values.max())
    slope_text = ds_str(peak / 65000.0 if peak > 0 else 1.0, 8)
    slope = float(slope_text)
    stored = np.clip(np.rint(values / slope), 0, 65535).astype(np.uint16)
    return stored, slope_text, slope


def write_subject_dicom(subject: Subject, folder: Path, vendor: str) -> WrittenSubject:
    """Render the subject and write its CT and PET series under `folder` (created)."""
    style = next(v for v in VENDORS if v.key == vendor)
    ct_dir, pet_dir = folder / "SE0002_CT", folder / "SE0003_PT"
    ct_dir.mkdir(parents=True, exist_ok=True)
    pet_dir.mkdir(parents=True, exist_ok=True)
    uids = {k: _uid(subject.seed, k) for k in ("study", "for", "ct", "pt")}

    hu = render_ct(subject, CT_GRID)
    _write_ct(subject, style, uids, ct_dir, hu)

    t_injection = _dt(style.study_date, style.injection)
    t_first = _dt(style.study_date, style.first_acquisition)
    t_series = t_first + timedelta(seconds=style.series_delay_s)
    dose = round(subject.weight_kg * 3.7e6, -5)  # ~3.7 MBq/kg
    factor_bqml = suvbw_factor(float(ds_str(subject.weight_kg)), dose, t_injection, t_first)
    suv = render_suv(subject, PET_GRID)
    if style.units == "CNTS":
        suv_scale = float(ds_str(PHILIPS_ACTIVITY_FACTOR * factor_bqml, 6))  # Philips writes ~6 digits
        activity_factor = float(ds_str(suv_scale / factor_bqml, 12))
        factor, pixels = suv_scale, suv / suv_scale
    else:
        factor, pixels = factor_bqml, suv / factor_bqml
        activity_factor = None

    nz = PET_GRID.shape[0]
    rescaled = np.empty(PET_GRID.shape, np.float64)
    for k in range(nz):
        bed = k * N_BEDS // nz  # beds acquired from the feet up
        t_acq = t_first + timedelta(seconds=bed * style.bed_seconds)
        number = nz - k
        ds = _base(subject, style, uids, "PT", PET_IMAGE_STORAGE, _uid(subject.seed, "pt", k))
        ds.SeriesInstanceUID, ds.SeriesNumber = uids["pt"], 3
        ds.SeriesDescription = "PET WB AC"
        ds.SeriesDate, ds.SeriesTime = t_series.strftime("%Y%m%d"), t_series.strftime("%H%M%S")
        ds.AcquisitionDate, ds.AcquisitionTime = t_acq.strftime("%Y%m%d"), t_acq.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = ds.SeriesDate, ds.SeriesTime
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.InstanceNumber, ds.ImageIndex, ds.AcquisitionNumber = number, number, bed + 1
        ds.Units, ds.CountsSource = style.units, "EMISSION"
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"]
        ds.DecayCorrection, ds.RandomsCorrectionMethod = "START", "DLYD"
        ds.AttenuationCorrectionMethod, ds.ReconstructionMethod = "CT-based", "OSEM 4i16s"
        ds.NumberOfSlices, ds.NumberOfTimeSlices = nz, 1
        duration = style.bed_seconds
        ds.ActualFrameDuration = str(duration * 1000)
        ds.FrameReferenceTime = ds_str(frame_reference_ms(t_acq, t_first, duration), 12)
        lam = math.log(2) / F18_HALF_LIFE_S
        ds.DecayFactor = ds_str(
            math.exp(lam * (t_acq - t_first).total_seconds())
            * lam
            * duration
            / (1 - math.exp(-lam * duration)),
            8,
        )
        ds.DoseCalibrationFactor = "1"
        drug = Dataset()
        drug.Radiopharmaceutical = "Fluorodeoxyglucose"
        drug.RadiopharmaceuticalStartTime = t_injection.strftime("%H%M%S.00")
        if style.start_datetime:
            drug.RadiopharmaceuticalStartDateTime = t_injection.strftime("%Y%m%d%H%M%S.00")
        drug.RadionuclideTotalDose = ds_str(dose)
        drug.RadionuclideHalfLife = ds_str(F18_HALF_LIFE_S)
        drug.RadionuclidePositronFraction = "0.9673"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-111A1", "SRT", "^18^Fluorine"
        drug.RadionuclideCodeSequence = [code]
        ds.RadiopharmaceuticalInformationSequence = [drug]
        if style.key == "ge":
            block = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
            block.add_new(0x0D, "DT", t_first.strftime("%Y%m%d%H%M%S.00"))
        if style.key == "philips":
            block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
            block.add_new(0x00, "DS", ds_str(factor, 6))
            block.add_new(0x09, "DS", ds_str(activity_factor, 12))  # type: ignore[arg-type]
        _geometry(ds, PET_GRID, k)
        stored, slope_text, slope = _quantise(pixels[k])
        ds.PixelRepresentation = 0
        ds.RescaleIntercept, ds.RescaleSlope = "0", slope_text
        ds.PixelData = stored.astype("<u2").tobytes()
        rescaled[k] = stored * slope
        ds.save_as(pet_dir / f"IM{number:05d}.dcm", enforce_file_format=True)

    inputs = {
        "weight_kg": float(ds_str(subject.weight_kg)),
        "dose_bq": dose,
        "half_life_s": F18_HALF_LIFE_S,
        "injection": t_injection.isoformat(),
        "reference_time": t_first.isoformat(),
        "series_time": t_series.isoformat(),
        "decay_s": (t_first - t_injection).total_seconds(),
        "reference_rule": {
            "siemens": "a: SeriesDateTime <= first AcquisitionDateTime",
            "ge": "b: GE private scan datetime (0009,100D)",
            "philips": "CNTS: Philips SUV scale factor (7053,1000)",
        }[style.key],
        "suvbw_factor_bqml": factor_bqml,
    }
    if activity_factor is not None:
        inputs["philips_activity_factor"] = activity_factor
    return WrittenSubject(
        folder=folder,
        study_uid=uids["study"],
        frame_of_reference_uid=uids["for"],
        ct_series_uid=uids["ct"],
        pet_series_uid=uids["pt"],
        vendor=style.key,
        units=style.units,
        suv_factor=factor,
        suv_inputs=inputs,
        ct_hu=hu,
        pet_suv=rescaled * factor,
        pet_rescaled=rescaled,
    )

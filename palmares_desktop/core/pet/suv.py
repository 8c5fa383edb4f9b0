"""SUV scale factors with full provenance (DOMAIN.md §1: QIBA pseudo-code + IBSI/oncoray SUV manual).

`compute_suv(datasets)` takes the pydicom datasets of ONE PET series and returns a `SuvResult`:
per image (SOPInstanceUID) the factor that turns the rescaled value (stored × RescaleSlope +
RescaleIntercept) into SUVbw in g/mL whatever the stored Units, the branch taken in words, every input
used, and SUVlbm/SUVbsa/SUVibw factors when weight, height and sex allow. It never raises on bad data:
`SuvResult.error` then holds the reason in a plain sentence and no factor is given (no guessing, in
particular the weight is never defaulted).

The algorithm works on `PetSliceHeader` records (see headers.py), so the same code serves DICOM files
and JSON metadata (`compute_suv_from_headers`).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from palmares_desktop.core.pet.bodysize import SUV_NORMALISATIONS, BodySizeError
from palmares_desktop.core.pet.headers import PetSliceHeader, header_from_dataset
from palmares_desktop.core.pet.timestamps import combine_da_tm, iso, parse_da, parse_dt, parse_tm

__all__ = [
    "SuvResult",
    "average_count_time_s",
    "compute_suv",
    "compute_suv_for_files",
    "compute_suv_from_headers",
]

log = logging.getLogger(__name__)

LN2 = math.log(2.0)
# No PET patient receives less than 0.1 MBq; a "Bq" value below this was typed in MBq (DOMAIN.md §1.4).
MBQ_DOSE_LIMIT = 1e5
# Nor less than 1 MBq (even a mouse gets several MBq): a value between the two limits is neither Bq
# nor MBq but most likely kBq, and guessing would be a silent 1000x error in every SUV.
KBQ_DOSE_LIMIT = 1e6
# No PET/CT table carries more than about 300 kg: a larger "kg" value was typed in grams or is a typo.
MAX_WEIGHT_KG = 350.0

# SUVType (0054,1006) of GML/CM2ML images -> the normalisation the stored values carry.
_STORED_SUV_TYPES = {
    "LBM": "suvlbm_james",  # DICOM CID 85 {SUVlbm}g/ml is the James formula
    "LBMJAMES": "suvlbm_james",
    "LBMJAMES128": "suvlbm_james128",
    "LBMJANMA": "suvlbm_janmahasatian",
    "LBMJANMAHASATIAN": "suvlbm_janmahasatian",
    "IBW": "suvibw",
    "BSA": "suvbsa",
}
# Attributes that must be identical in every image of one series.
_SERIES_LEVEL = (
    ("series_instance_uid", "SeriesInstanceUID"),
    ("units", "Units"),
    ("suv_type", "SUVType"),
    ("decay_correction", "DecayCorrection"),
    ("radionuclide_total_dose", "RadionuclideTotalDose"),
    ("radionuclide_half_life_s", "RadionuclideHalfLife"),
    ("radiopharmaceutical_start_datetime", "RadiopharmaceuticalStartDateTime"),
    ("radiopharmaceutical_start_time", "RadiopharmaceuticalStartTime"),
    ("patient_weight_kg", "PatientWeight"),
    ("patient_size_m", "PatientSize"),
    ("patient_sex", "PatientSex"),
    ("series_date", "SeriesDate"),
    ("series_time", "SeriesTime"),
)


@dataclass
class SuvResult:
    """SUV factors of one PET series with the provenance of every number (see module docstring)."""

    series_uid: str | None
    suvbw_factors: dict[str, float] = field(default_factory=dict)
    suvbw_factor: float | None = None
    method: str = ""
    inputs: dict = field(default_factory=dict)
    error: str | None = None
    other_factors: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {
            "series_uid": self.series_uid,
            "suvbw_factors": dict(self.suvbw_factors),
            "suvbw_factor": self.suvbw_factor,
            "method": self.method,
            "inputs": dict(self.inputs),
            "error": self.error,
            "other_factors": {name: dict(f) for name, f in self.other_factors.items()},
        }


class _Refusal(Exception):
    """The series cannot be converted to SUV; the message is the reason for the user."""


def average_count_time_s(frame_duration_s: float, half_life_s: float) -> float:
    """Time after the frame start at which the decaying activity equals its frame average (QIBA T_ave)."""
    if frame_duration_s <= 0:
        return 0.0
    decay_constant = LN2 / half_life_s
    decay_in_frame = decay_constant * frame_duration_s
    return math.log(decay_in_frame / -math.expm1(-decay_in_frame)) / decay_constant


def compute_suv(datasets: Sequence[Dataset]) -> SuvResult:
    """SUV factors of one PET series given as pydicom datasets (classic slices or Enhanced PET)."""
    try:
        headers = [header_from_dataset(ds) for ds in datasets]
    except Exception as exc:  # noqa: BLE001 - a malformed header is a refusal, not a crash
        log.exception("PET header extraction failed")
        return SuvResult(series_uid=None, error=f"The PET header could not be read ({exc}).")
    return compute_suv_from_headers(headers)


def compute_suv_for_files(paths: Sequence[str | Path]) -> SuvResult:
    """SUV factors of one PET series given as its files; only the headers are read (no pixel data)."""
    datasets = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # vendor VR/length quirks are not the user's concern here
                datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception as exc:  # noqa: BLE001 - any unreadable file makes the series a refusal
            return SuvResult(
                series_uid=None, error=f"The PET file {Path(path).name} could not be read ({exc})."
            )
    return compute_suv(datasets)


def compute_suv_from_headers(headers: Sequence[PetSliceHeader]) -> SuvResult:
    """SUV factors of one PET series given as header records. Never raises on bad data."""
    calculation = _Calculation(list(headers))
    series_uid = headers[0].series_instance_uid if headers else None
    try:
        factors = calculation.run()
        other = calculation.other_factors(factors)
    except _Refusal as refusal:
        return SuvResult(series_uid, method=calculation.method, inputs=calculation.inputs, error=str(refusal))
    except Exception as exc:  # noqa: BLE001 - last line of defence: report, never crash the caller
        log.exception("unexpected error in the SUV calculation")
        return SuvResult(
            series_uid,
            method=calculation.method,
            inputs=calculation.inputs,
            error=f"SUV calculation failed: {exc}.",
        )
    values = list(factors.values())
    common = values[0] if all(math.isclose(v, values[0], rel_tol=1e-12) for v in values) else None
    return SuvResult(series_uid, factors, common, calculation.method, calculation.inputs, None, other)


class _Calculation:
    """One run of the algorithm; collects `inputs` and the `method` words as it goes."""

    def __init__(self, headers: list[PetSliceHeader]) -> None:
        self.headers = headers
        self.inputs: dict = {}
        self._method: list[str] = []
        self.decay_correction: str | None = None

    @property
    def method(self) -> str:
        return "; ".join(self._method)

    @property
    def first(self) -> PetSliceHeader:
        return self.headers[0]

    def run(self) -> dict[str, float]:
        if not self.headers:
            raise _Refusal("No PET images were given.")
        self._check_one_series()
        self._record_header_basics()
        self._check_corrections()
        self._check_rescale()
        units = self.first.units or ""
        if units == "BQML":
            self._method.append("Units BQML: rescaled values are activity concentrations in Bq/mL")
            self.inputs["units_path"] = "BQML"
            return self._activity_to_suvbw([1.0] * len(self.headers))
        if units == "CNTS":
            return self._counts_to_suvbw()
        if units == "CPS":
            return self._counts_per_second_to_suvbw()
        if units in ("GML", "CM2ML"):
            return self._stored_suv_to_suvbw(units)
        if not units:
            raise _Refusal("Units (0054,1001) is missing, so the meaning of the pixel values is unknown.")
        raise _Refusal(
            f"Units (0054,1001) is {units}, which cannot be converted to SUV "
            "(supported: BQML, CNTS with Philips factors, CPS with DCAL or a DoseCalibrationFactor, GML, CM2ML)."
        )

    # --- checks ---------------------------------------------------------------------------------

    def _check_one_series(self) -> None:
        for attribute, keyword in _SERIES_LEVEL:
            values = {getattr(h, attribute) for h in self.headers}
            if len(values) > 1:
                shown = " vs ".join(sorted(str(v) for v in values)[:3])
                raise _Refusal(
                    f"The images do not come from one series: {keyword} differs between them ({shown})."
                )
        if len({frozenset(h.corrected_image) for h in self.headers}) > 1:
            raise _Refusal("The images do not come from one series: CorrectedImage differs between them.")
        uids = [h.sop_instance_uid for h in self.headers]
        if any(not uid for uid in uids):
            raise _Refusal("An image has no SOPInstanceUID, so its factor could not be reported.")
        if len(set(uids)) != len(uids):
            raise _Refusal("The same SOPInstanceUID appears more than once in the series (duplicate images).")

    def _record_header_basics(self) -> None:
        h = self.first
        self.inputs.update(
            n_images=len(self.headers),
            manufacturer=h.manufacturer,
            units=h.units,
            suv_type=h.suv_type,
            corrected_image=list(h.corrected_image),
            decay_correction=h.decay_correction,
            patient_weight_kg=h.patient_weight_kg,
            patient_size_m=h.patient_size_m,
            patient_sex=h.patient_sex,
        )

    def _check_corrections(self) -> None:
        h = self.first
        if h.enhanced_attenuation_corrected or h.enhanced_decay_corrected:
            if h.enhanced_attenuation_corrected != "YES":
                raise _Refusal(
                    "Enhanced PET: Attenuation Corrected (0018,9759) is not YES, so SUV is meaningless."
                )
            decay_corrected = h.enhanced_decay_corrected == "YES"
            self.decay_correction = h.decay_correction or ("START" if decay_corrected else "NONE")
            self.inputs["corrections_source"] = "Enhanced PET flags (0018,9758)/(0018,9759)"
        else:
            codes = set(h.corrected_image)
            if "ATTN" not in codes:
                raise _Refusal(
                    'CorrectedImage (0028,0051) does not contain "ATTN": the images are not attenuation '
                    "corrected, so SUV is meaningless."
                )
            decay_corrected = bool(codes & {"DECY", "DECAY"})
            self.decay_correction = h.decay_correction
            self.inputs["corrections_source"] = "CorrectedImage (0028,0051)"
        if decay_corrected and self.decay_correction == "NONE":
            raise _Refusal(
                "The header is contradictory: the images are marked decay corrected but DecayCorrection is NONE."
            )
        if not decay_corrected and self.decay_correction != "NONE":
            raise _Refusal(
                'CorrectedImage (0028,0051) must contain "ATTN" and "DECY": the images are not marked decay '
                f"corrected while DecayCorrection is {self.decay_correction or 'missing'}."
            )

    def _check_rescale(self) -> None:
        for h in self.headers:
            if h.rescale_intercept not in (None, 0.0):
                raise _Refusal(
                    f"RescaleIntercept is {h.rescale_intercept:g} (image {h.sop_instance_uid}); SUV needs a zero "
                    "intercept, so these values are not activity concentrations."
                )
        slopes = [h.rescale_slope for h in self.headers if h.rescale_slope is not None]
        if slopes:
            self.inputs.update(rescale_slope_min=min(slopes), rescale_slope_max=max(slopes))

    # --- Units branches ---------------------------------------------------------------------------

    def _counts_to_suvbw(self) -> dict[str, float]:
        suv_scales = [h.philips_suv_scale_factor for h in self.headers]
        activity_scales = [h.philips_activity_concentration_scale_factor for h in self.headers]
        if _all_positive(suv_scales):
            self.inputs.update(
                units_path="CNTS -> Philips SUV scale factor", philips_suv_scale_factor=_summary(suv_scales)
            )
            self._method.append(
                "Units CNTS: Philips private SUV scale factor (7053,1000) turns the rescaled counts directly "
                "into SUVbw (weight, dose and times are not used)"
            )
            return {h.sop_instance_uid: float(f) for h, f in zip(self.headers, suv_scales, strict=True)}
        if _all_positive(activity_scales):
            self.inputs.update(
                units_path="CNTS -> Philips activity concentration factor -> BQML",
                philips_activity_concentration_scale_factor=_summary(activity_scales),
            )
            self._method.append(
                "Units CNTS: Philips private activity concentration scale factor (7053,1009) turns counts "
                "into Bq/mL"
            )
            return self._activity_to_suvbw([float(g) for g in activity_scales])
        raise _Refusal(
            "Units are CNTS but the Philips private SUV scale factor (7053,1000) and activity concentration "
            "scale factor (7053,1009) are missing, 0 or not on every image, so the counts cannot be converted."
        )

    def _counts_per_second_to_suvbw(self) -> dict[str, float]:
        if "DCAL" in self.first.corrected_image:
            self.inputs["units_path"] = "CPS with DCAL -> BQML"
            self._method.append('Units CPS with "DCAL" in CorrectedImage: values are dose-calibrated Bq/mL')
            return self._activity_to_suvbw([1.0] * len(self.headers))
        factors = [h.dose_calibration_factor for h in self.headers]
        if _all_positive(factors):
            self.inputs.update(
                units_path="CPS -> DoseCalibrationFactor -> BQML", dose_calibration_factor=_summary(factors)
            )
            self._method.append("Units CPS: DoseCalibrationFactor (0054,1322) turns counts/s into Bq/mL")
            return self._activity_to_suvbw([float(f) for f in factors])
        raise _Refusal(
            'Units are CPS without "DCAL" in CorrectedImage and without a DoseCalibrationFactor (0054,1322), '
            "so counts per second cannot be converted to Bq/mL."
        )

    def _stored_suv_to_suvbw(self, units: str) -> dict[str, float]:
        suv_type = self.first.suv_type or ("BW" if units == "GML" else "BSA")
        if units == "CM2ML" and suv_type != "BSA":
            raise _Refusal(f"Units CM2ML (SUVbsa) contradicts SUVType {suv_type}.")
        if units == "GML" and suv_type == "BW":
            self.inputs["units_path"] = "GML (SUVbw stored)"
            self._method.append("Units GML, SUVType BW or empty: rescaled values are already SUVbw; factor 1")
            return {h.sop_instance_uid: 1.0 for h in self.headers}
        name = _STORED_SUV_TYPES.get(suv_type)
        if name is None:
            raise _Refusal(
                f"SUVType (0054,1006) {suv_type} is not a known SUV normalisation (BW, LBM, IBW, BSA)."
            )
        words, reference = SUV_NORMALISATIONS[name]
        try:
            weight_kg, height_cm, sex = self._body_size_inputs()
            reference_amount = reference(weight_kg, height_cm, sex)
        except BodySizeError as exc:
            raise _Refusal(
                f"Units {units} with SUVType {suv_type}: the values are {name} and converting them to SUVbw needs "
                f"the patient's weight, height and sex, but {exc}."
            ) from exc
        factor = weight_kg * 1e3 / reference_amount
        self.inputs.update(
            units_path=f"{units} ({name} stored)", stored_normalisation_reference=reference_amount
        )
        self._method.append(
            f"Units {units}, SUVType {suv_type}: rescaled values are {name} ({words}); "
            f"SUVbw = value × weight / reference = value × {factor:.6g}"
        )
        return {h.sop_instance_uid: factor for h in self.headers}

    # --- activity concentration -> SUVbw ----------------------------------------------------------

    def _activity_to_suvbw(self, scales: list[float]) -> dict[str, float]:
        weight_g = self._weight_g()
        dose_bq = self._dose_bq()
        half_life_s = self._half_life_s()
        series_dt, acquisitions = self._scan_datetimes()
        scan_start = min([t for t in [series_dt, *acquisitions] if t is not None])
        injection = self._injection_datetime(scan_start)
        decay_correction = self.decay_correction
        if decay_correction == "START":
            reference, rule = self._start_reference_time(series_dt, acquisitions, half_life_s)
            decay_s = (reference - injection).total_seconds()
            self.inputs.update(
                reference_datetime=iso(reference), reference_time_rule=rule, decay_time_s=decay_s
            )
            if decay_s < 0:
                raise _Refusal(
                    f"The injection ({iso(injection)}) is after the decay reference time ({iso(reference)}): "
                    "the decay time cannot be negative."
                )
            decayed_dose = dose_bq * 2.0 ** (-decay_s / half_life_s)
            self.inputs["decayed_dose_Bq"] = decayed_dose
            self._method.append(
                f"DecayCorrection START, reference time by rule {rule.split(':')[0]}: "
                "SUVbw = A × weight / (dose × 2^(−(t_ref − t_inj)/T½))"
            )
            return {
                h.sop_instance_uid: s * weight_g / decayed_dose
                for h, s in zip(self.headers, scales, strict=True)
            }
        if decay_correction == "ADMIN":
            if injection > scan_start:
                raise _Refusal(
                    f"The injection ({iso(injection)}) is after the scan start ({iso(scan_start)})."
                )
            self.inputs.update(
                reference_datetime=iso(injection), reference_time_rule="ADMIN: the injection time"
            )
            self._method.append(
                "DecayCorrection ADMIN: already decay corrected to injection; SUVbw = A × weight / dose"
            )
            return {
                h.sop_instance_uid: s * weight_g / dose_bq for h, s in zip(self.headers, scales, strict=True)
            }
        if decay_correction == "NONE":
            return self._uncorrected_to_suvbw(scales, weight_g, dose_bq, half_life_s, acquisitions, injection)
        raise _Refusal(
            f"DecayCorrection (0054,1102) is {decay_correction or 'missing'}; it must be START, ADMIN or NONE."
        )

    def _uncorrected_to_suvbw(
        self,
        scales: list[float],
        weight_g: float,
        dose_bq: float,
        half_life_s: float,
        acquisitions: list[datetime | None],
        injection: datetime,
    ) -> dict[str, float]:
        decay_constant = LN2 / half_life_s
        factors: dict[str, float] = {}
        for h, scale, acquired in zip(self.headers, scales, acquisitions, strict=True):
            if h.distinct_frame_times > 1:
                raise _Refusal(
                    f"DecayCorrection NONE needs one factor per acquisition time, but the Enhanced PET instance "
                    f"{h.sop_instance_uid} holds frames from {h.distinct_frame_times} times in one instance."
                )
            if acquired is None:
                raise _Refusal(
                    f"DecayCorrection NONE needs the acquisition time of every image; {h.sop_instance_uid} has none."
                )
            if not (h.actual_frame_duration_ms or 0) > 0:
                raise _Refusal(
                    f"DecayCorrection NONE needs ActualFrameDuration (0018,1242); {h.sop_instance_uid} has none."
                )
            since_injection_s = (acquired - injection).total_seconds()
            if since_injection_s < 0:
                raise _Refusal(
                    f"The injection ({iso(injection)}) is after the acquisition ({iso(acquired)})."
                )
            in_frame = decay_constant * h.actual_frame_duration_ms / 1000.0
            frame_decay = in_frame / -math.expm1(-in_frame)
            factors[h.sop_instance_uid] = (
                scale * weight_g / dose_bq * frame_decay * math.exp(decay_constant * since_injection_s)
            )
        self.inputs.update(reference_time_rule="NONE: each image corrected from its own acquisition start")
        self._method.append(
            "DecayCorrection NONE: per image SUVbw = A × weight / dose × λT/(1 − e^(−λT)) × e^(λ(t_acq − t_inj))"
        )
        return factors

    def _start_reference_time(
        self, series_dt: datetime | None, acquisitions: list[datetime | None], half_life_s: float
    ) -> tuple[datetime, str]:
        h = self.first
        explicit = parse_dt(h.decay_correction_datetime)
        if explicit is not None:
            return explicit, "Enhanced PET: DecayCorrectionDateTime (0018,9701)"
        missing = sum(t is None for t in acquisitions)
        if missing:
            raise _Refusal(
                f"AcquisitionDate/AcquisitionTime is missing on {missing} image(s), so the decay reference time "
                "of DecayCorrection START cannot be established."
            )
        if series_dt is None:
            raise _Refusal(
                "SeriesDate/SeriesTime is missing or unreadable, so the decay reference time cannot be established."
            )
        earliest = min(acquisitions)
        self.inputs["earliest_acquisition_datetime"] = iso(earliest)
        if series_dt <= earliest:
            return series_dt, "a: SeriesDate/SeriesTime (not later than the earliest acquisition)"
        ge_scan = parse_dt(h.ge_scan_datetime)
        if ge_scan is not None:
            return (
                ge_scan,
                "b: GE private scan DateTime (0009,100D), since the series time is after the acquisition",
            )
        frame_times_known = all(
            (x.frame_reference_time_ms or 0) > 0 and (x.actual_frame_duration_ms or 0) > 0
            for x in self.headers
        )
        if not frame_times_known:
            return earliest, (
                "c (fallback): earliest AcquisitionDate/Time, since the series time is after the acquisition and "
                "FrameReferenceTime/ActualFrameDuration are missing or 0"
            )
        estimates = [
            acquired
            + timedelta(
                seconds=average_count_time_s(x.actual_frame_duration_ms / 1000.0, half_life_s)
                - x.frame_reference_time_ms / 1000.0
            )
            for x, acquired in zip(self.headers, acquisitions, strict=True)
        ]
        chosen = estimates[acquisitions.index(earliest)]
        self.inputs["reference_estimates_spread_s"] = (max(estimates) - min(estimates)).total_seconds()
        return chosen, (
            "c: back-computed from the earliest acquisition, t_acq + T_ave − FrameReferenceTime/1000 "
            "(the series time is after the acquisition and there is no GE private scan time)"
        )

    # --- inputs ------------------------------------------------------------------------------------

    def _weight_g(self) -> float:
        weight = self.first.patient_weight_kg
        if weight is None or weight <= 0:
            shown = "missing" if weight is None else f"{weight:g} kg"
            if weight is None and self.first.patient_weight_text:
                shown = (
                    f"'{self.first.patient_weight_text}', which is not a number (DICOM needs a decimal point)"
                )
            raise _Refusal(
                f"PatientWeight (0010,1030) is {shown}: SUVbw needs the patient weight, which is never defaulted."
            )
        if weight > MAX_WEIGHT_KG:
            raise _Refusal(
                f"PatientWeight (0010,1030) is {weight:g} kg, which is not a possible patient weight "
                "(typed in grams?): check the weight with the PET unit."
            )
        return weight * 1e3

    def _dose_bq(self) -> float:
        dose = self.first.radionuclide_total_dose
        if dose is None and self.first.radionuclide_total_dose_text:
            raise _Refusal(
                f"RadionuclideTotalDose (0018,1074) is '{self.first.radionuclide_total_dose_text}', which is "
                "not a number (DICOM needs a decimal point), so SUV cannot be computed."
            )
        if dose is None or dose <= 0:
            raise _Refusal(
                "RadionuclideTotalDose (0018,1074) is missing or not positive, so SUV cannot be computed."
            )
        converted = dose < MBQ_DOSE_LIMIT
        if converted and dose < 1:
            raise _Refusal(f"RadionuclideTotalDose {dose:g} is implausible both in Bq and in MBq.")
        if MBQ_DOSE_LIMIT <= dose < KBQ_DOSE_LIMIT:
            raise _Refusal(
                f"RadionuclideTotalDose (0018,1074) is {dose:g}: too small for a dose in Bq "
                f"({dose / 1e6:g} MBq) and too large for MBq; it was probably entered in kBq. "
                "Check the injected dose with the PET unit."
            )
        dose_bq = dose * 1e6 if converted else dose
        self.inputs.update(dose_as_stored=dose, dose_Bq=dose_bq, dose_converted_from_MBq=converted)
        if converted:
            self._method.append(f"dose {dose:g} is far below any real dose in Bq: read as MBq and converted")
        return dose_bq

    def _half_life_s(self) -> float:
        half_life = self.first.radionuclide_half_life_s
        if half_life is None or half_life <= 0:
            raise _Refusal(
                "RadionuclideHalfLife (0018,1075) is missing or not positive, so decay cannot be corrected."
            )
        self.inputs["half_life_s"] = half_life
        return half_life

    def _scan_datetimes(self) -> tuple[datetime | None, list[datetime | None]]:
        h = self.first
        series_dt = combine_da_tm(h.series_date, h.series_time)
        acquisitions = []
        for x in self.headers:
            # AcquisitionDate is sometimes dropped by anonymisers; SeriesDate is the day of the scan.
            acquired = parse_dt(x.acquisition_datetime) or combine_da_tm(
                x.acquisition_date or x.series_date, x.acquisition_time
            )
            acquisitions.append(acquired)
        if series_dt is None and all(t is None for t in acquisitions):
            raise _Refusal(
                "Neither SeriesDate/SeriesTime nor AcquisitionDate/AcquisitionTime is readable: the scan time is unknown."
            )
        self.inputs["series_datetime"] = iso(series_dt)
        return series_dt, acquisitions

    def _injection_datetime(self, scan_start: datetime) -> datetime:
        h = self.first
        injection = parse_dt(h.radiopharmaceutical_start_datetime)
        if injection is not None:
            source = "RadiopharmaceuticalStartDateTime (0018,1078)"
        else:
            start_time = parse_tm(h.radiopharmaceutical_start_time)
            scan_day = parse_da(h.series_date) or scan_start.date()
            if start_time is None:
                raise _Refusal(
                    "The injection time is missing: neither RadiopharmaceuticalStartDateTime (0018,1078) nor "
                    "RadiopharmaceuticalStartTime (0018,1072) is readable."
                )
            injection = datetime.combine(scan_day, start_time)
            source = "RadiopharmaceuticalStartTime (0018,1072) on SeriesDate"
            if injection > scan_start:
                injection -= timedelta(days=1)
                source += ", moved to the previous day (injected before midnight, scanned after)"
        self.inputs.update(injection_datetime=iso(injection), injection_time_source=source)
        return injection

    def _body_size_inputs(self) -> tuple[float, float, str | None]:
        h = self.first
        if h.patient_weight_kg is None or h.patient_weight_kg <= 0:
            raise BodySizeError("the patient weight is missing or 0")
        if h.patient_size_m is None or h.patient_size_m <= 0:
            raise BodySizeError("the patient height (PatientSize) is missing or 0")
        if not 0.3 <= h.patient_size_m <= 2.6:
            raise BodySizeError(f"PatientSize {h.patient_size_m:g} is not a plausible height in metres")
        return h.patient_weight_kg, h.patient_size_m * 100.0, h.patient_sex

    # --- body-size normalisations -----------------------------------------------------------------

    def other_factors(self, suvbw: dict[str, float]) -> dict[str, dict[str, float]]:
        """SUVlbm (James, James128, Janmahasatian), SUVibw and SUVbsa factors where weight/height/sex allow."""
        factors: dict[str, dict[str, float]] = {}
        skipped: dict[str, str] = {}
        references: dict[str, float] = {}
        try:
            weight_kg, height_cm, sex = self._body_size_inputs()
        except BodySizeError as exc:
            self.inputs["other_factors_skipped"] = {"all": str(exc)}
            return factors
        for name, (_words, reference) in SUV_NORMALISATIONS.items():
            try:
                amount = reference(weight_kg, height_cm, sex)
            except BodySizeError as exc:
                skipped[name] = str(exc)
                continue
            references[name] = amount
            ratio = amount / (weight_kg * 1e3)  # SUVx = SUVbw × reference / weight
            factors[name] = {uid: f * ratio for uid, f in suvbw.items()}
        self.inputs["body_size_references"] = {
            "unit": "g for lean/ideal masses, cm² for suvbsa",
            "height_cm": height_cm,
            **references,
        }
        if skipped:
            self.inputs["other_factors_skipped"] = skipped
        return factors


def _all_positive(values: list[float | None]) -> bool:
    return all(v is not None and v > 0 for v in values)


def _summary(values: list[float | None]) -> float | list[float | None]:
    """One number when all images share it, else the per-image list (provenance stays complete)."""
    return values[0] if len(set(values)) == 1 else list(values)

"""The PET tools on a subject in the store: one call per CLI command (and per GUI tool).

- `threshold_lesion`: threshold in a region, saved as a (final) segmentation version on the PET grid
  with the rule, its parameters, the reference statistics and the SUL normalisation;
- `subject_pet_metrics`: every lesion's PET numbers and the subject's totals;
- `subject_candidates`: whole-body candidates, with `accept_candidate` to keep one as a lesion.

SUL comes from the series' stored SUV provenance (Janmahasatian lean body mass from the sex, height
and weight the SUV engine read): sul_ratio = LBM / weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.lesions import next_lesion_name
from palmares_desktop.core.model import Lesion, Segmentation, Series, Subject
from palmares_desktop.core.pet.bodysize import BodySizeError, lbm_janmahasatian_kg
from palmares_desktop.core.pet.candidates import CandidateSet, find_candidates
from palmares_desktop.core.pet.metrics import subject_totals
from palmares_desktop.core.pet.threshold import (
    RULE_WORDS,
    PetToolError,
    PetVolume,
    ReferenceRegion,
    Region,
    ThresholdResult,
    blood_pool_reference,
    liver_reference,
    rule_threshold,
    threshold_in_region,
)
from palmares_desktop.core.reading_set import version_in_use
from palmares_desktop.core.segmentation.geometry import Grid
from palmares_desktop.core.segmentation.labelmaps import add_segmentation, find_series
from palmares_desktop.core.store import Store, records

CT_TO_PET_RULE = "CT mask resampled to the PET grid by nearest neighbour: a PET voxel is in when its centre falls in a CT mask voxel"


def sul_normalisation(series: Series | dict) -> tuple[float | None, dict]:
    """(sul_ratio, record) from the sex, height and weight in a PET series' stored SUV provenance;
    the ratio is None (and the record says why) when they cannot give a lean body mass."""
    inputs = records.suv_provenance(series).get("inputs") or {}
    weight, size_m, sex = (
        inputs.get("patient_weight_kg"),
        inputs.get("patient_size_m"),
        inputs.get("patient_sex"),
    )
    height = size_m * 100.0 if size_m else None
    record: dict[str, Any] = {
        "lbm_formula": "Janmahasatian 2005",
        "patient_sex": sex,
        "height_cm": height,
        "weight_kg": weight,
    }
    try:
        lbm = lbm_janmahasatian_kg(weight, height, sex)
    except BodySizeError as exc:
        record["sul_unavailable"] = str(exc)
        return None, record
    record.update(lbm_kg=lbm, sul_ratio=lbm / weight)
    return lbm / weight, record


def load_pet(store: Store, subject_code: str) -> tuple[Subject, Series, PetVolume, sitk.Image]:
    """(subject, PET series, SUV volume, the image) of the subject's most recent PET."""
    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise PetToolError(f"There is no subject {subject_code} in this store.")
    series = find_series(store, subject.id, "PT")
    if series.units != "SUVbw":
        suv = records.suv_provenance(series)
        why = f": {suv['error']}" if suv.get("error") else ""
        raise PetToolError(
            f"The PET of {subject_code} is not SUV-calibrated (units {series.units or 'unknown'}{why}); "
            "SUV thresholds cannot be applied to it."
        )
    path = store.path(series.pixel_path or "")
    if not path.is_file():
        raise PetToolError(
            f"The PET volume of {subject_code} is missing from the store ({series.pixel_path})."
        )
    image = sitk.ReadImage(str(path))
    ratio, record = sul_normalisation(series)
    pet = PetVolume(sitk.GetArrayFromImage(image), Grid.of(image), ratio, record)
    return subject, series, pet, image


def reference_region(pet: PetVolume, liver_at=None, blood_pool_at=None) -> ReferenceRegion | None:
    if liver_at is not None and blood_pool_at is not None:
        raise PetToolError("Give the liver reference or the blood-pool reference, not both.")
    if liver_at is not None:
        return liver_reference(pet, liver_at)
    if blood_pool_at is not None:
        return blood_pool_reference(pet, blood_pool_at)
    return None


def _save(store, subject, series, image, mask, method, parameters, lesion_name, organ) -> Segmentation:
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(image)
    return add_segmentation(
        store,
        subject.code,
        "PT",
        out,
        lesion_name=lesion_name or next_lesion_name(store, subject.id, "PET lesion"),
        organ=organ,
        method=method,
        parameters=parameters,
        series_id=series.id,
    )


def threshold_lesion(
    store: Store,
    subject_code: str,
    at_mm,
    rule: str,
    liver_at=None,
    blood_pool_at=None,
    size_mm: float = 60.0,
    shape: str = "box",
    seed_mm=None,
    lesion_name: str | None = None,
    organ: str | None = None,
) -> tuple[Segmentation, ThresholdResult]:
    """Threshold in a region around `at_mm`, saved as the lesion's new PET segmentation version."""
    subject, series, pet, image = load_pet(store, subject_code)
    reference = reference_region(pet, liver_at, blood_pool_at) if rule == "percist" else None
    if rule == "percist" and reference is None:
        rule_threshold(rule)  # raises the sentence saying which reference to place
    result = threshold_in_region(pet, Region(tuple(at_mm), size_mm, shape), rule, reference, seed_mm)
    saved = _save(
        store, subject, series, image, result.mask, result.method, result.parameters, lesion_name, organ
    )
    return saved, result


def threshold_report(store: Store, subject_code: str, seg: Segmentation, result: ThresholdResult) -> dict:
    """What `threshold_lesion` saved, as `palmares pet threshold --json` prints it and the room shows it:
    the metrics at the top level, `kept_existing` when the mask equals a stored version (add_segmentation
    keeps one version per distinct mask)."""
    return {
        "subject": subject_code,
        "lesion": records.lesion_row(store, seg.lesion_id).name,
        "segmentation_id": seg.id,
        "version": seg.version,
        "method": result.method,
        "kept_existing": seg.method != result.method,
        "kept_method": seg.method,
        **result.metrics.to_dict(),
        "parameters": result.parameters,
    }


def _two(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def threshold_lines(report: dict) -> list[str]:
    """The sentences a radiologist reads about a `threshold_report`, first line first."""
    p = report["parameters"]
    if report["kept_existing"]:
        saved = f"same mask as PET segmentation version {report['version']} ({report['kept_method']}), kept as it is"
    else:
        saved = f"PET segmentation version {report['version']} saved"
    lines = [
        f"{report['subject']} lesion {report['lesion']!r}: {saved} "
        f"({p['rule_words']}, threshold SUV {p['threshold_suv']:.2f})."
    ]
    if "reference" in p:
        r = p["reference"]
        lines.append(
            f"Reference {r['kind']}: SUV mean {r['suv_mean']:.2f}, SD {r['suv_sd']:.2f} ({r['voxel_count']} voxels)"
            + (f"; SUL mean {r['sul_mean']:.2f}, SD {r['sul_sd']:.2f}." if r["sul_mean"] is not None else ".")
        )
    lines.append(
        f"SUVmax {report['suv_max']:.2f}  SUVmean {report['suv_mean']:.2f}  SUVpeak {report['suv_peak']:.2f}  "
        f"SULpeak {_two(report['sul_peak'])}  MTV {report['mtv_ml']:.2f} mL  TLG {report['tlg']:.2f}  "
        f"({report['voxel_count']} voxels)"
    )
    if report["smaller_than_peak_sphere"]:
        lines.append(
            "The lesion is smaller than the 1 mL peak sphere: its SUVpeak includes surrounding tissue."
        )
    if p["touches_region_edge"]:
        lines.append("The result reaches the edge of the region: it may have leaked into the surroundings.")
    return lines


def _stored_reference(store: Store, series_id: str) -> tuple[str, tuple[float, float, float]] | None:
    """(kind, centre) of the reference region the reader last placed for a PERCIST threshold here."""
    for seg in records.segmentations_on_series(store, series_id):
        reference = seg.parameters.get("reference") or {}
        if reference.get("kind") in ("liver", "blood pool"):
            return reference["kind"], tuple(reference["centre_mm"])  # type: ignore[return-value]
    return None


def subject_candidates(
    store: Store,
    subject_code: str,
    rule: str = "percist",
    liver_at=None,
    blood_pool_at=None,
    min_voxels: int = 1,
) -> tuple[CandidateSet, PetVolume]:
    """Whole-body candidates above `rule`. PERCIST uses the given reference, else the reference region
    of the subject's last PERCIST threshold on this PET."""
    if rule in ("41%", "50%"):
        raise PetToolError(
            f"The {rule} rule is relative to one lesion's SUVmax; for whole-body candidates use percist, "
            "suv2.5 or suv4.0."
        )
    subject, series, pet, _ = load_pet(store, subject_code)
    reference, source = None, "given"
    if rule == "percist":
        stored = _stored_reference(store, series.id) if liver_at is None and blood_pool_at is None else None
        if stored is not None:
            kind, centre = stored
            liver_at, blood_pool_at = (centre, None) if kind == "liver" else (None, centre)
            source = f"the {kind} reference of the last PERCIST threshold on this PET"
        reference = reference_region(pet, liver_at, blood_pool_at)
    threshold = rule_threshold(rule, reference=reference)
    result = find_candidates(pet, threshold, min_voxels)
    words = reference.words if reference is not None else RULE_WORDS[rule]
    result.parameters.update(rule=rule, rule_words=words, sul=pet.normalisation)
    if reference is not None:
        result.parameters["reference"] = {**reference.to_dict(), "source": source}
    return result, pet


def accept_candidate(
    store: Store,
    subject_code: str,
    result: CandidateSet,
    rank: int,
    lesion_name: str | None = None,
    organ=None,
) -> Segmentation:
    """Keep candidate `rank` as a lesion (a new PET segmentation version)."""
    subject, series, _, image = load_pet(store, subject_code)
    mask = result.mask_of(rank)  # refuses a rank that is not listed
    candidate = next(c for c in result.candidates if c.rank == rank)
    parameters = {**result.parameters, "candidate_rank": rank, "hottest_mm": list(candidate.hottest_mm)}
    method = f"PET whole-body candidate: {result.parameters.get('rule_words', 'threshold')}"
    return _save(store, subject, series, image, mask, method, parameters, lesion_name, organ)


# ----------------------------------------------------------------------------- metrics
def _mask_on_pet(
    store: Store, lesion: Lesion, pet_series: Series, image: sitk.Image
) -> tuple[np.ndarray, dict] | None:
    """The lesion's mask on the PET grid: its PET segmentation, else its CT one resampled."""
    pet_version = version_in_use(store, lesion, pet_series.id)
    if pet_version is not None:
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(pet_version.mask_path)))) > 0
        return mask, {
            "segmentation_id": pet_version.id,
            "version": pet_version.version,
            "drawn_on": "PET",
        }
    for ct in records.series_of_subject_oldest_first(store, pet_series.subject_id, "CT"):
        ct_version = version_in_use(store, lesion, ct.id)
        if ct_version is None:
            continue
        ct_mask = sitk.ReadImage(str(store.path(ct_version.mask_path)))
        resampled = sitk.Resample(
            ct_mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
        )
        source = {"segmentation_id": ct_version.id, "version": ct_version.version, "drawn_on": "CT"}
        return sitk.GetArrayFromImage(resampled) > 0, {**source, "resampling": CT_TO_PET_RULE}
    return None


def mask_box(mask: np.ndarray) -> tuple[slice, ...]:
    where = np.argwhere(mask)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(where.min(axis=0), where.max(axis=0), strict=True))


def subject_pet_metrics(store: Store, subject_code: str) -> dict:
    """{'lesions': [per-lesion metrics], 'totals': {...}} over the subject's lesions with a mask."""
    subject, series, pet, image = load_pet(store, subject_code)
    lesions, skipped = [], []
    for lesion in records.lesions_of_subject(store, subject.id):
        found = _mask_on_pet(store, lesion, series, image)
        if found is None:
            continue
        mask, source = found
        if not mask.any():
            skipped.append({"name": lesion.name, "reason": "its CT mask covers no PET voxel centre"})
            continue
        metrics = pet.metrics(mask, mask_box(mask)).to_dict()
        lesions.append(
            {
                "name": lesion.name,
                "organ": lesion.organ,
                "recist_status": lesion.recist_status,
                **metrics,
                "mask": source,
            }
        )
    totals = subject_totals(lesions)
    return {
        "subject": subject_code,
        "pet_series_id": series.id,
        "sul": pet.normalisation,
        "lesions": lesions,
        "skipped": skipped,
        "totals": totals,
    }

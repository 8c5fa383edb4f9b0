"""A subject's lesions as the reading room's lesions panel edits them, and the numbers it shows.

- The site comes from a fixed list carrying SNOMED CT anatomic-region codes (the codes DICOM SEG export
  writes, core/segmentation/export.py); RECIST status and bone character from fixed words.
- `recist_check` applies the RECIST 1.1 rules of DOMAIN §3 to the subject's lesions and explains each
  breach in one sentence: at most 5 targets, at most 2 per organ (all lymph nodes count as one organ),
  nodes measured by their short axis (target >= 15 mm, 10-15 mm non-target), other lesions measurable
  from a 10 mm longest diameter (twice the slice thickness on slices thicker than 5 mm), bone lesions
  measurable only with a soft-tissue component of 10 mm or more.
- Delete is a mark (`deleted_at`), so it can be undone; lists, metrics and exports skip deleted lesions.
- `lesion_numbers`: per lesion SUVmax/mean/peak, MTV, TLG (PET grid, core/pet/subject_pet.py), HU
  mean/SD and the RECIST diameters (CT grid, core/ct/recist.py), with the resampling rule when a mask
  drawn on one grid gives numbers on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.ct.recist import recist_diameters
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Lesion, Subject
from palmares_desktop.core.pet.metrics import ct_hu_stats
from palmares_desktop.core.reading_set import version_in_use
from palmares_desktop.core.segmentation.export import SITE_CODES
from palmares_desktop.core.store import Store, records

RECIST_STATUSES = ("target", "non-target", "non-measurable")
BONE_CHARACTERS = ("lytic", "blastic", "mixed")
SOFT_TISSUE_WORDS = "with soft-tissue component"
#: RECIST 1.1 (DOMAIN §3)
MAX_TARGETS, MAX_TARGETS_PER_ORGAN = 5, 2
MEASURABLE_MM, NODE_TARGET_SHORT_MM, NODE_PATHOLOGICAL_SHORT_MM = 10.0, 15.0, 10.0
PET_TO_CT_RULE = (
    "PET mask resampled to the CT grid by nearest neighbour: a CT voxel is in when its centre falls in a "
    "PET mask voxel"
)


class LesionError(PalmaresError):
    """A lesion edit cannot be made; the message says why in one sentence."""


@dataclass(frozen=True)
class Site:
    name: str  # the stored organ word
    snomed_code: str
    snomed_meaning: str

    @property
    def label(self) -> str:
        return f"{self.name} (SNOMED CT {self.snomed_code})"


SITES = tuple(Site(name, code, meaning) for name, (code, meaning) in SITE_CODES.items())


def site_named(name: str | None) -> Site | None:
    return next((s for s in SITES if s.name == (name or "").strip().lower()), None)


def is_node(organ: str | None) -> bool:
    return "node" in (organ or "").lower()


def organ_group(organ: str | None) -> str:
    """The organ RECIST counts targets per: every lymph node is one organ."""
    return "lymph nodes" if is_node(organ) else (organ or "unspecified")


def bone_character_text(character: str | None, soft_tissue: bool = False) -> str | None:
    if not character:
        return None
    if character not in BONE_CHARACTERS:
        raise LesionError(f"The bone character {character!r} is not one of {', '.join(BONE_CHARACTERS)}.")
    return f"{character} {SOFT_TISSUE_WORDS}" if soft_tissue else character


def parse_bone_character(text: str | None) -> tuple[str | None, bool]:
    """(lytic|blastic|mixed|None, has a soft-tissue component) from the stored words."""
    text = (text or "").strip()
    soft = text.endswith(SOFT_TISSUE_WORDS)
    word = text[: -len(SOFT_TISSUE_WORDS)].strip() if soft else text
    return (word or None), soft


# ------------------------------------------------------------------------------------ RECIST
@dataclass(frozen=True)
class RecistNote:
    lesion: str | None  # None: a note about the whole subject
    level: str  # breach (the rules are not met) | hint (a suggestion)
    text: str


def _measure_words(lesion: dict) -> tuple[str, float | None]:
    key = "recist_short_axis_mm" if is_node(lesion.get("organ")) else "recist_long_axis_mm"
    value = lesion.get(key)
    return ("short axis" if key.endswith("short_axis_mm") else "longest diameter"), (
        float(value) if value is not None else None
    )


def recist_check(lesions: list[dict], slice_thickness_mm: float | None = None) -> list[RecistNote]:
    """RECIST 1.1 notes for lesions given as dicts with name, organ, recist_status, bone_character and,
    when measured, recist_long_axis_mm / recist_short_axis_mm."""
    notes: list[RecistNote] = []
    measurable = MEASURABLE_MM
    if slice_thickness_mm and slice_thickness_mm > 5.0:
        measurable = max(MEASURABLE_MM, 2.0 * slice_thickness_mm)
    targets = [x for x in lesions if x.get("recist_status") == "target"]
    if len(targets) > MAX_TARGETS:
        notes.append(
            RecistNote(
                None,
                "breach",
                f"{len(targets)} target lesions: RECIST 1.1 allows at most {MAX_TARGETS}; make the others "
                "non-target.",
            )
        )
    per_organ: dict[str, list[str]] = {}
    for lesion in targets:
        per_organ.setdefault(organ_group(lesion.get("organ")), []).append(lesion["name"])
    for organ, names in sorted(per_organ.items()):
        if len(names) > MAX_TARGETS_PER_ORGAN:
            notes.append(
                RecistNote(
                    None,
                    "breach",
                    f"{len(names)} targets in {organ} ({', '.join(names)}): RECIST 1.1 allows at most "
                    f"{MAX_TARGETS_PER_ORGAN} per organ (all lymph nodes count as one organ).",
                )
            )
    for lesion in lesions:
        name, status, organ = lesion["name"], lesion.get("recist_status"), lesion.get("organ")
        what, size = _measure_words(lesion)
        character, soft = parse_bone_character(lesion.get("bone_character"))
        if status == "target" and organ == "bone" and not soft:
            notes.append(
                RecistNote(
                    name,
                    "breach",
                    f"{name} is a bone lesion without a soft-tissue component: non-measurable by RECIST 1.1 "
                    "(a target needs a soft-tissue component of 10 mm or more).",
                )
            )
            continue
        if status == "target" and size is not None:
            if is_node(organ) and size < NODE_TARGET_SHORT_MM:
                kind = "non-target" if size >= NODE_PATHOLOGICAL_SHORT_MM else "not pathological"
                notes.append(
                    RecistNote(
                        name,
                        "breach",
                        f"{name} is a node with a short axis of {size:.1f} mm: a target node needs "
                        f"{NODE_TARGET_SHORT_MM:.0f} mm or more (10 to 15 mm: non-target), so it is {kind}.",
                    )
                )
            elif not is_node(organ) and size < measurable:
                notes.append(
                    RecistNote(
                        name,
                        "breach",
                        f"{name} has a longest diameter of {size:.1f} mm: under {measurable:.0f} mm it is "
                        "non-measurable, not a target.",
                    )
                )
        if status is None and size is not None:
            suggestion = suggested_status(lesion, measurable)
            notes.append(
                RecistNote(name, "hint", f"{name}: {what} {size:.1f} mm, measurable as {suggestion}.")
            )
    return notes


def suggested_status(lesion: dict, measurable_mm: float = MEASURABLE_MM) -> str:
    """The status the size rules allow (target where measurable; the reader still picks at most 5)."""
    organ = lesion.get("organ")
    _, soft = parse_bone_character(lesion.get("bone_character"))
    if organ == "bone" and not soft:
        return "non-measurable"
    _, size = _measure_words(lesion)
    if size is None:
        return "non-target"
    if is_node(organ):
        if size >= NODE_TARGET_SHORT_MM:
            return "target"
        return "non-target" if size >= NODE_PATHOLOGICAL_SHORT_MM else "non-measurable"
    return "target" if size >= measurable_mm else "non-measurable"


# ------------------------------------------------------------------------------------ edits
def _subject(store: Store, subject_code: str) -> Subject:
    subject = store.subject_by_code(subject_code)
    if subject is None:
        raise LesionError(f"There is no subject {subject_code} in this store.")
    return subject


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise LesionError("A lesion needs a name.")
    return name


def _check_free(store: Store, subject: Subject, name: str) -> None:
    if records.lesion_named(store, subject.id, name) is not None:
        raise LesionError(f"{subject.code} already has a lesion named {name!r}.")


def _check_site(organ: str | None) -> str | None:
    if organ is None:
        return None
    site = site_named(organ)
    if site is None:
        raise LesionError(f"The site {organ!r} is not one of {', '.join(s.name for s in SITES)}.")
    return site.name


def next_lesion_name(store: Store, subject_id: str, prefix: str) -> str:
    """The first free '<prefix> N' of the subject (e.g. 'PET lesion 3'), for a tool's unnamed lesion."""
    names = {lesion.name for lesion in records.lesions_of_subject(store, subject_id)}
    n = 1
    while f"{prefix} {n}" in names:
        n += 1
    return f"{prefix} {n}"


def add_lesion(store: Store, subject_code: str, name: str, organ: str | None = None) -> Lesion:
    subject = _subject(store, subject_code)
    name = _clean_name(name)
    organ = _check_site(organ)
    with store.transaction():
        _check_free(store, subject, name)
        return records.add_lesion(store, subject.id, name, organ)


def rename_lesion(store: Store, lesion_id: str, name: str) -> Lesion:
    name = _clean_name(name)
    lesion = records.lesion_row(store, lesion_id)
    if lesion.name == name:
        return lesion
    subject = records.subject(store, lesion.subject_id)
    with store.transaction():
        _check_free(store, subject, name)
        return records.rename_lesion(store, lesion_id, name)


def describe_lesion(
    store: Store,
    lesion_id: str,
    organ: str | None = None,
    recist_status: str | None = None,
    bone_character: str | None = None,
    notes: str | None = None,
) -> Lesion:
    """Set the site, RECIST status, bone character (`bone_character_text`) and notes in one update."""
    if recist_status is not None and recist_status not in RECIST_STATUSES:
        raise LesionError(f"The RECIST status {recist_status!r} is not one of {', '.join(RECIST_STATUSES)}.")
    character, _ = parse_bone_character(bone_character)
    if character is not None and character not in BONE_CHARACTERS:
        raise LesionError(f"The bone character {character!r} is not one of {', '.join(BONE_CHARACTERS)}.")
    changes = {
        "organ": _check_site(organ),
        "recist_status": recist_status,
        "bone_character": bone_character or None,
        "notes": (notes or "").strip() or None,
    }
    lesion = records.lesion_row(store, lesion_id)
    changes = {k: v for k, v in changes.items() if getattr(lesion, k) != v}
    if not changes:
        return lesion
    return records.update_lesion(store, lesion_id, changes)


def delete_lesion(store: Store, lesion_id: str) -> Lesion:
    """Mark the lesion deleted (its versions stay, for the audit and to undo)."""
    return records.set_lesion_deleted(store, lesion_id, datetime.now(timezone.utc).isoformat())


def restore_lesion(store: Store, lesion_id: str) -> Lesion:
    """Undo a delete; refused when a lesion of the same name was added meanwhile."""
    lesion = records.lesion_row(store, lesion_id)
    subject = records.subject(store, lesion.subject_id)
    with store.transaction():
        if records.lesion_named(store, subject.id, lesion.name) is not None:
            raise LesionError(
                f"{subject.code} has a new lesion named {lesion.name!r}; rename it before restoring this one."
            )
        return records.set_lesion_deleted(store, lesion_id, None)


# ------------------------------------------------------------------------------------ numbers
def _read(store: Store, relative: str) -> sitk.Image:
    return sitk.ReadImage(str(store.path(relative)))


def lesion_numbers(store: Store, subject_code: str) -> dict[str, dict]:
    """{lesion id: numbers} for every lesion of the subject: PET metrics (subject_pet_metrics) and, on the
    CT, HU mean/SD and the RECIST diameters of its CT mask (else of its PET mask resampled)."""
    from palmares_desktop.core.pet.subject_pet import subject_pet_metrics
    from palmares_desktop.core.pet.threshold import PetToolError

    subject = _subject(store, subject_code)
    lesions = records.lesions_of_subject(store, subject.id)
    out: dict[str, dict] = {x.id: {"name": x.name, "organ": x.organ} for x in lesions}
    by_name = {x.name: x.id for x in lesions}
    pet_series = records.series_of_subject_oldest_first(store, subject.id, "PT")
    try:
        pet = subject_pet_metrics(store, subject_code) if pet_series else None
    except PetToolError as exc:
        pet = None
        for numbers in out.values():
            numbers["pet_unavailable"] = str(exc)
    for entry in (pet or {}).get("lesions", []):
        lesion_id = by_name.get(entry["name"])
        if lesion_id is not None:
            out[lesion_id].update({k: v for k, v in entry.items() if k not in ("name", "organ")})
    cts = records.series_of_subject_oldest_first(store, subject.id, "CT")
    if not cts:
        return out
    ct = cts[0]
    ct_image = None
    for lesion in lesions:
        version = version_in_use(store, lesion, ct.id)
        resampling = None
        if version is not None:
            mask_image = _read(store, version.mask_path)
        else:
            pet_version = next(
                (v for s in pet_series if (v := version_in_use(store, lesion, s.id)) is not None), None
            )
            if pet_version is None:
                continue
            ct_image = ct_image or _read(store, ct.pixel_path)
            mask_image = sitk.Resample(
                _read(store, pet_version.mask_path),
                ct_image,
                sitk.Transform(),
                sitk.sitkNearestNeighbor,
                0,
                sitk.sitkUInt8,
            )
            resampling = PET_TO_CT_RULE
        mask = sitk.GetArrayFromImage(mask_image) > 0
        if not mask.any():
            continue
        ct_image = ct_image or _read(store, ct.pixel_path)
        hu = sitk.GetArrayViewFromImage(ct_image)
        where = np.argwhere(mask)
        lo, hi = where.min(axis=0), where.max(axis=0) + 1
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        numbers = {**ct_hu_stats(hu[box], mask[box]), **recist_diameters(mask[box], ct_image.GetSpacing())}
        if numbers["recist_slice"] is not None:
            numbers["recist_slice"] += int(lo[0])
        numbers["ct_volume_ml"] = float(mask.sum() * np.prod(ct_image.GetSpacing()) / 1000.0)
        if resampling:
            numbers["ct_resampling"] = resampling
        out[lesion.id].update(numbers)
    return out

"""Clean-up of a lesion's segmentation in the store, one call per `palmares segmentation clean` (and per
GUI clean-up button): read the lesion's version in use on the subject's CT or PET
(core/reading_set.version_in_use), apply one operation of core/segmentation/cleanup.py, and save the
result as the current reader's next final version with the method and its parameters.

Also the saving and reporting shared with the CT tools (core/ct/subject_ct.py): `save_mask` and
`version_report`; for the room's clean-up panel, `combinable_lesions` (the other lesions a union /
intersect / subtract may name) and `cleanup_sentence` (what a clean-up did, before → after).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core import modalities
from palmares_desktop.core.model import Lesion, Segmentation, Series, Subject
from palmares_desktop.core.reading_set import version_in_use
from palmares_desktop.core.segmentation import cleanup
from palmares_desktop.core.segmentation.cleanup import CleanupError
from palmares_desktop.core.segmentation.geometry import Grid, grid_mismatch
from palmares_desktop.core.segmentation.labelmaps import add_segmentation, target_of
from palmares_desktop.core.store import Store, records
from palmares_desktop.core.store import segmentations as chains

OPERATIONS = (
    "fill-holes",
    "remove-islands",
    "grow",
    "shrink",
    "union",
    "intersect",
    "subtract",
    "interpolate",
)
_COMBINE = {"union": "union", "intersect": "intersection", "subtract": "subtract"}
DISTANCE_RULE = "Euclidean distance in mm between voxel centres, on the voxel spacing (ball of that radius)"


@dataclass
class CleanResult:
    mask: np.ndarray  # bool (z, y, x) on the series' grid
    method: str
    parameters: dict[str, Any] = field(default_factory=dict)
    before_voxels: int = 0
    kept_existing: bool = False  # the mask equals the reader's latest version, which was kept
    unchanged: bool = False  # the operation changed no voxel of the version it read


# ----------------------------------------------------------------------------- saving, reporting
def save_mask(
    store: Store,
    subject_code: str,
    series: Series,
    grid: Grid,
    mask: np.ndarray,
    method: str,
    parameters: dict,
    lesion_name: str,
    organ: str | None = None,
) -> tuple[Segmentation, bool]:
    """Save `mask` ((z, y, x) on `grid`) as the current reader's next final version of the lesion on
    `series`; returns (version, kept) where `kept` says the mask equals that reader's latest version,
    which add_segmentation keeps instead of adding a copy."""
    subject = store.subject_by_code(subject_code)
    lesion = records.lesion_named(store, subject.id, lesion_name) if subject else None
    before = {v.id for v in records.segmentation_versions(store, lesion.id, series.id)} if lesion else set()
    image = grid.apply_to(sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8)))
    saved = add_segmentation(
        store,
        subject_code,
        series.modality,
        image,
        lesion_name=lesion_name,
        organ=organ,
        method=method,
        parameters=parameters,
        series_id=series.id,
    )
    return saved, saved.id in before


def version_report(
    store: Store, subject_code: str, seg: Segmentation, kept: bool, method: str, parameters: dict, **extra
) -> dict:
    """What a tool saved, as the commands print it with --json and the room shows it."""
    series = records.series_row(store, seg.series_id)
    return {
        "subject": subject_code,
        "lesion": records.lesion_row(store, seg.lesion_id).name,
        "modality": modalities.word_of(series.modality),
        "segmentation_id": seg.id,
        "version": seg.version,
        "voxel_count": seg.voxel_count,
        "volume_ml": seg.volume_ml,
        "method": method,
        "kept_existing": kept,
        "kept_method": seg.method,
        **extra,
        "parameters": parameters,
    }


def saved_sentence(report: dict) -> str:
    """The first line a reader reads about a `version_report`."""
    image = modalities.display_of(report["modality"])
    if report["kept_existing"]:
        saved = (
            f"same mask as {image} segmentation version {report['version']} ({report['kept_method']}), "
            "kept as it is"
        )
    else:
        saved = f"{image} segmentation version {report['version']} saved ({report['method']})"
    return (
        f"{report['subject']} lesion {report['lesion']!r}: {saved}: {report['voxel_count']} voxels, "
        f"{report['volume_ml']:.2f} mL."
    )


# ----------------------------------------------------------------------------- reading
def lesion_of(store: Store, subject: Subject, name: str) -> Lesion:
    """The subject's lesion called `name`, or a refusal naming the lesions there are."""
    lesion = records.lesion_named(store, subject.id, name)
    if lesion is None:
        names = [x.name for x in records.lesions_of_subject(store, subject.id)]
        known = f"its lesions are {', '.join(repr(n) for n in names)}" if names else "it has no lesion yet"
        raise CleanupError(f"{subject.code} has no lesion {name!r}; {known}.")
    return lesion


def _other_series_words(store: Store, lesion: Lesion, series: Series) -> str:
    """Where else the lesion is drawn, for a refusal: ' (it is drawn on another grid: PET)'."""
    elsewhere = [
        modalities.display_of(code)
        for code in ("CT", "PT")
        if any(
            other.id != series.id and version_in_use(store, lesion, other.id) is not None
            for other in records.series_of_subject_oldest_first(store, lesion.subject_id, code)
        )
    ]
    if not elsewhere:
        return ""
    return f" (it is drawn on another grid: {' and '.join(elsewhere)})"


def mask_in_use(
    store: Store, lesion: Lesion, series: Series, grid: Grid, subject_code: str
) -> tuple[np.ndarray, Segmentation]:
    """(mask (z, y, x) bool, version) of the lesion's version in use on `series`."""
    image = modalities.display_of(series.modality)
    version = version_in_use(store, lesion, series.id)
    if version is None:
        raise CleanupError(
            f"Lesion {lesion.name!r} of {subject_code} has no final {image} segmentation on this "
            f"series{_other_series_words(store, lesion, series)}."
        )
    path = store.path(version.mask_path)
    if not path.is_file():
        raise CleanupError(
            f"The mask of lesion {lesion.name!r} (version {version.version}) is missing from the store "
            f"({version.mask_path})."
        )
    stored = sitk.ReadImage(str(path))
    problems = grid_mismatch(stored, grid)
    if problems:
        raise CleanupError(
            f"The {image} mask of lesion {lesion.name!r} is not on the {image}'s grid ({'; '.join(problems)})."
        )
    return sitk.GetArrayFromImage(stored) > 0, version


def combinable_lesions(store: Store, subject_code: str, lesion_name: str, series_id: str) -> list[str]:
    """Names of the subject's other lesions with a version in use on the series (by name): those a
    union / intersect / subtract of `lesion_name` on that series can use."""
    subject = store.subject_by_code(subject_code)
    if subject is None:
        return []
    return [
        lesion.name
        for lesion in records.lesions_of_subject(store, subject.id)
        if lesion.name != lesion_name and version_in_use(store, lesion, series_id) is not None
    ]


def _no_other_words(store: Store, subject: Subject, lesion: Lesion, series: Series) -> str:
    """Which lesions could be named, for the refusal of a union / intersect / subtract without one."""
    names = combinable_lesions(store, subject.code, lesion.name, series.id)
    if names:
        return f"one of {', '.join(repr(n) for n in names)}"
    image = modalities.display_of(series.modality)
    return f"{subject.code} has no other lesion with a final {image} segmentation on this series"


# ----------------------------------------------------------------------------- clean
def _method(operation: str, mm, other, per_slice: bool, min_ml) -> str:
    if operation == "fill-holes":
        return "clean-up: fill holes " + ("(per axial slice)" if per_slice else "(3D)")
    if operation == "remove-islands":
        return "clean-up: remove islands " + (
            f"(keep parts of at least {min_ml:g} mL)" if min_ml is not None else "(keep the largest part)"
        )
    if operation in ("grow", "shrink"):
        return f"clean-up: {operation} {mm:g} mm"
    if operation == "interpolate":
        return "clean-up: interpolate between drawn slices"
    return {
        "union": "clean-up: union with",
        "intersect": "clean-up: intersection with",
        "subtract": "clean-up: subtract",
    }[operation] + f" {other!r}"


def clean_lesion(
    store: Store,
    subject_code: str,
    lesion_name: str,
    modality: str,
    operation: str,
    mm: float | None = None,
    other_lesion: str | None = None,
    per_slice: bool = False,
    min_ml: float | None = None,
    series_id: str | None = None,
) -> tuple[Segmentation, CleanResult]:
    """Apply `operation` (one of OPERATIONS) to the lesion's version in use on the subject's CT or PET
    (`modality`: ct / pet) and save the next version. `mm` for grow / shrink; `other_lesion` for union /
    intersect / subtract (its version in use on the same series); `per_slice` for fill-holes; `min_ml`
    for remove-islands (default: keep the largest part). Returns (saved version, result); `version_report`
    gives what the command prints."""
    if operation not in OPERATIONS:
        raise CleanupError(f"The clean-up {operation!r} is not one of {', '.join(OPERATIONS)}.")
    subject, series, _, grid = target_of(store, subject_code, modality, series_id)
    lesion = lesion_of(store, subject, lesion_name)
    mask, version = mask_in_use(store, lesion, series, grid, subject_code)
    spacing = tuple(float(s) for s in grid.spacing[::-1])
    parameters: dict[str, Any] = {
        "operation": operation,
        "from_segmentation_id": version.id,
        "from_version": version.version,
        "from_method": version.method,
        "from_voxel_count": int(mask.sum()),
        "connectivity": "26 (faces, edges and corners)",
    }
    if operation in ("grow", "shrink"):
        if mm is None:
            raise CleanupError(f"To {operation} a lesion, give the distance in mm.")
        parameters.update(
            mm=float(mm), distance=DISTANCE_RULE, reach_mm_zyx=list(cleanup.reach_mm(mm, spacing))
        )
        if operation == "shrink":
            parameters["outside_scan"] = "counts as background"
        out = (cleanup.grow_mm if operation == "grow" else cleanup.shrink_mm)(mask, mm, spacing)
    elif operation == "fill-holes":
        parameters["per_slice"] = bool(per_slice)
        out = cleanup.fill_holes(mask, per_slice)
    elif operation == "remove-islands":
        parameters["min_ml"] = min_ml
        out = cleanup.remove_islands(mask, min_ml, spacing)
        parameters["islands_removed"] = cleanup.count_parts(mask) - cleanup.count_parts(out)
    elif operation == "interpolate":
        parameters["drawn_slices"] = cleanup.drawn_slices(mask)
        parameters["rule"] = (
            "shape-based: linear blend of the in-plane signed distance maps of the neighbouring drawn "
            "axial slices, zero level kept"
        )
        out = cleanup.interpolate_slices(mask, spacing)
    else:
        if not other_lesion:
            raise CleanupError(
                f"To {operation} lesions, name the other lesion ({_no_other_words(store, subject, lesion, series)})."
            )
        if other_lesion == lesion.name:
            raise CleanupError(f"Lesion {other_lesion!r} cannot be combined with itself.")
        other = lesion_of(store, subject, other_lesion)
        other_mask, other_version = mask_in_use(store, other, series, grid, subject_code)
        parameters.update(
            other_lesion=other.name,
            other_segmentation_id=other_version.id,
            other_version=other_version.version,
        )
        out = cleanup.combine(mask, other_mask, _COMBINE[operation])
    method = _method(operation, mm, other_lesion, per_slice, min_ml)
    if not out.any():
        raise CleanupError(
            f"{method[len('clean-up: ') :].capitalize()} leaves lesion {lesion.name!r} with no voxel; "
            "nothing was saved."
        )
    saved, kept = save_mask(store, subject_code, series, grid, out, method, parameters, lesion.name)
    unchanged = bool(np.array_equal(out, mask))
    return saved, CleanResult(out, method, parameters, int(mask.sum()), kept, unchanged)


def cleanup_sentence(store: Store, report: dict) -> str:
    """One sentence on a `clean_report`: the operation, voxels and mL before → after, what was saved."""
    p = report["parameters"]
    before = chains.segmentation(store, p["from_segmentation_id"])
    image = modalities.display_of(report["modality"])
    if report["kept_existing"]:
        saved = f"the same mask as {image} segmentation version {report['version']}, kept as it is"
    else:
        saved = f"saved as {image} segmentation version {report['version']}"
    if report.get("unchanged"):
        saved += " (no voxel changed)"
    return (
        f"{report['subject']} lesion {report['lesion']!r}, {report['method'][len('clean-up: ') :]}: "
        f"{p['from_voxel_count']} → {report['voxel_count']} voxels "
        f"({before.volume_ml:.2f} → {report['volume_ml']:.2f} mL), {saved}."
    )


def clean_lines(store: Store, report: dict) -> list[str]:
    """What the command line and the room say about a clean-up: the before -> after sentence, and for
    grow/shrink what the distance reaches on this grid."""
    lines = [cleanup_sentence(store, report)]
    reach = report["parameters"].get("reach_mm_zyx")
    if reach:
        z, y, x = reach
        lines.append(
            f"On this grid {report['parameters']['mm']:g} mm reaches {x:.3g} mm along x, {y:.3g} mm along y "
            f"and {z:.3g} mm along z (whole voxels)."
        )
    return lines


def clean_report(store: Store, subject_code: str, seg: Segmentation, result: CleanResult) -> dict:
    """`version_report` of a clean-up, with the voxel count before it."""
    return version_report(
        store,
        subject_code,
        seg,
        result.kept_existing,
        result.method,
        result.parameters,
        voxels_before=result.before_voxels,
        unchanged=result.unchanged,
    )

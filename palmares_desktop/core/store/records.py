"""The repository layer: callers ask by meaning ("the final segmentations of this lesion"), never name
a table or write SQL, and every `*_json` column is parsed (`as_*`) and written (`json_column`) here.

Queries hand back typed model objects (core/model.py) built by the `as_*` converters; the few that
return rows (dicts, marked `-> dict`) serve writers and exchange code that copy columns as they are.
Segmentation chains (drafts and finals) are in segmentations.py beside this module.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from palmares_desktop.core.model import (
    FeatureSet,
    Lesion,
    Parameters,
    Segmentation,
    Series,
    Slide,
    SlideAnnotation,
    Study,
    Subject,
    VoxelGrid,
)
from palmares_desktop.core.store.store import Store, StoreError


# ------------------------------------------------------------------------------ JSON columns
def json_column(value: Any) -> str | None:
    """How a structured value is written to a `*_json` column (sorted keys: stable hashes, diffs)."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def series_json_columns(
    size: Iterable[int],
    spacing: Iterable[float],
    origin: Iterable[float],
    direction: Iterable[float],
    suv: Mapping[str, Any] | None,
    problems: Iterable[str],
) -> dict[str, str | None]:
    """The JSON columns of a `series` row (plain json.dumps: the first wave's text, byte for byte)."""
    return {
        "size_json": json.dumps(list(size)),
        "spacing_json": json.dumps(list(spacing)),
        "origin_json": json.dumps(list(origin)),
        "direction_json": json.dumps(list(direction)),
        "suv_json": None if suv is None else json.dumps(dict(suv)),
        "problems_json": json.dumps(list(problems)),
    }


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _get(row: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = row.get(key)
    return default if value is None else value


# ------------------------------------------------------------------------------ converters
def as_subject(row: Mapping[str, Any]) -> Subject:
    return Subject(
        row["id"],
        row["code"],
        row["site_code"],
        author_id=_get(row, "author_id", ""),
        revision=int(_get(row, "revision", 0)),
        created_at=_get(row, "created_at", ""),
        updated_at=_get(row, "updated_at", ""),
    )


def as_study(row: Mapping[str, Any]) -> Study:
    return Study(
        row["id"],
        row["subject_id"],
        _get(row, "study_uid", ""),
        row.get("study_date"),
        _get(row, "description", ""),
    )


def suv_provenance(series: Series | Mapping[str, Any]) -> dict[str, Any]:
    """The SUV provenance of a series or `series` row ({} for CT or when none was stored), a copy."""
    if isinstance(series, Series):
        return copy.deepcopy(dict(series.suv or {}))
    return _loads(series.get("suv_json"), None) or {}


def as_series(row: Mapping[str, Any]) -> Series:
    size = _loads(row.get("size_json"), None)
    grid = (
        VoxelGrid(
            tuple(int(v) for v in size),
            tuple(float(v) for v in _loads(row.get("spacing_json"), [])),
            tuple(float(v) for v in _loads(row.get("origin_json"), [])),
            tuple(float(v) for v in _loads(row.get("direction_json"), [])),
        )
        if size
        else None
    )
    return Series(
        id=row["id"],
        subject_id=row["subject_id"],
        study_id=row["study_id"],
        modality=row["modality"],
        series_uid=_get(row, "series_uid", ""),
        frame_of_reference_uid=row.get("frame_of_reference_uid"),
        description=_get(row, "description", ""),
        manufacturer=_get(row, "manufacturer", ""),
        grid=grid,
        units=_get(row, "units", ""),
        pixel_path=_get(row, "pixel_path", ""),
        pixel_sha256=_get(row, "pixel_sha256", ""),
        suv=_loads(row.get("suv_json"), None),
        problems=tuple(_loads(row.get("problems_json"), [])),
        study_date=row.get("_study_date"),
        created_at=_get(row, "created_at", ""),
    )


def as_lesion(row: Mapping[str, Any]) -> Lesion:
    return Lesion(
        row["id"],
        row["subject_id"],
        row["name"],
        row.get("organ"),
        row.get("lesion_type"),
        row.get("recist_status"),
        row.get("bone_character"),
        row.get("notes"),
        deleted_at=row.get("deleted_at"),
        author_id=_get(row, "author_id", ""),
        created_at=_get(row, "created_at", ""),
        updated_at=_get(row, "updated_at", ""),
    )


def as_segmentation(row: Mapping[str, Any]) -> Segmentation:
    return Segmentation(
        id=row["id"],
        lesion_id=row["lesion_id"],
        series_id=row["series_id"],
        reader_id=_get(row, "reader_id", row.get("author_id") or ""),
        version=int(_get(row, "version", 0)),
        status=_get(row, "status", "final"),
        method=_get(row, "method", ""),
        parameters=Parameters(_loads(row.get("parameters_json"), {})),
        mask_path=_get(row, "mask_path", ""),
        mask_sha256=_get(row, "mask_sha256", ""),
        label=int(_get(row, "label", 1)),
        voxel_count=int(_get(row, "voxel_count", 0)),
        volume_ml=float(_get(row, "volume_ml", 0.0)),
        source=_loads(row.get("source"), {}),
        author_id=_get(row, "author_id", ""),
        created_at=_get(row, "created_at", ""),
        updated_at=_get(row, "updated_at", ""),
        lesion_name=_get(row, "lesion_name", ""),
        organ=row.get("organ"),
        series_modality=_get(row, "series_modality", ""),
    )


def as_slide(row: Mapping[str, Any]) -> Slide:
    return Slide(
        row["id"],
        row["subject_id"],
        _get(row, "display_name", ""),
        _get(row, "format", ""),
        int(_get(row, "width", 0)),
        int(_get(row, "height", 0)),
        int(_get(row, "levels", 0)),
        row.get("mpp_x"),
        row.get("mpp_y"),
        _get(row, "sha256", ""),
        _get(row, "stain", ""),
        size_bytes=row.get("size_bytes"),
        site_code=_get(row, "site_code", ""),
        author_id=_get(row, "author_id", ""),
        created_at=_get(row, "created_at", ""),
    )


def as_slide_annotation(row: Mapping[str, Any]) -> SlideAnnotation:
    color = _loads(row.get("color"), None)
    return SlideAnnotation(
        row["id"],
        row["slide_id"],
        row["object_type"],
        row.get("classification"),
        tuple(color) if color else None,
        _loads(row.get("geometry_json"), {}),
        _loads(row.get("measurements_json"), {}),
        row.get("name"),
    )


def as_feature_set(row: Mapping[str, Any]) -> FeatureSet:
    return FeatureSet(
        id=row["id"],
        segmentation_id=row["segmentation_id"],
        series_id=_get(row, "series_id", ""),
        lesion_id=_get(row, "lesion_id", ""),
        modality=_get(row, "modality", ""),
        params_name=_get(row, "params_name", ""),
        params_sha256=_get(row, "params_sha256", ""),
        image_sha256=_get(row, "image_sha256", ""),
        mask_sha256=_get(row, "mask_sha256", ""),
        status=_get(row, "status", ""),
        error=row.get("error"),
        features=feature_values(row),
        provenance=feature_provenance(row),
        deviation=row.get("deviation"),
        elapsed_s=row.get("elapsed_s"),
        author_id=_get(row, "author_id", ""),
        created_at=_get(row, "created_at", ""),
    )


def feature_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """The features of a `feature_sets` row (empty for a failed extraction)."""
    return _loads(row.get("features_json"), {})


def feature_provenance(row: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance of a `feature_sets` row; unreadable text is shown as it is, not dropped."""
    text = row.get("provenance_json")
    parsed = _loads(text, None)
    return parsed if isinstance(parsed, dict) else ({"provenance_json": text} if text else {})


# -------------------------------------------------------------------------------- subjects
def subject(store: Store, subject_id: str) -> Subject:
    """The subject with this row id (StoreError with a sentence if unknown)."""
    return as_subject(store.get("subjects", subject_id))


def has_subjects(store: Store) -> bool:
    return bool(store.db["subjects"].count)


def subject_has_series(store: Store, subject_id: str) -> bool:
    return bool(store.db["series"].count_where("subject_id = ?", [subject_id]))


def has_status(store: Store, subject_id: str, modality: str) -> bool:
    return bool(
        store.db["subject_status"].count_where("subject_id = ? and modality = ?", [subject_id, modality])
    )


# ------------------------------------------------------------------------- studies, series
def study_with_uid(store: Store, study_uid: str) -> Study | None:
    rows = store.rows("studies", "study_uid = ?", [study_uid])
    return as_study(rows[0]) if rows else None


def add_study(store: Store, row: dict) -> Study:
    return as_study(store.insert("studies", row))


def add_series(store: Store, row: dict) -> Series:
    return as_series(store.insert("series", row))


def series_with_fingerprint(store: Store, fingerprint: str) -> Series | None:
    """The series imported from the same original series (re-import check), if any."""
    rows = store.rows("series", "source_fingerprint = ?", [fingerprint])
    return as_series(rows[0]) if rows else None


def series_row(store: Store, series_id: str) -> Series:
    """The series with this row id (StoreError with a sentence if unknown)."""
    return as_series(store.get("series", series_id))


def series_of_subject(store: Store, subject_id: str, modality: str) -> list[Series]:
    """The subject's series of one modality, newest study first, then newest import first (each
    carries its study date): the order in which core/series_choice.py considers them."""
    rows = store.db.query(
        "select series.*, studies.study_date as _study_date from series "
        "left join studies on studies.id = series.study_id "
        "where series.subject_id = ? and series.modality = ? "
        "order by coalesce(studies.study_date, '') desc, series.created_at desc, series.rowid desc",
        [subject_id, modality],
    )
    return [as_series(r) for r in rows]


# ---------------------------------------------------------------------------------- lesions
def lesion_named(store: Store, subject_id: str, name: str) -> Lesion | None:
    rows = store.rows("lesions", "subject_id = ? and name = ? and deleted_at is null", [subject_id, name])
    return as_lesion(rows[0]) if rows else None


def lesion_row(store: Store, lesion_id: str) -> Lesion:
    """The lesion with this row id, deleted or not (StoreError with a sentence if unknown)."""
    return as_lesion(store.get("lesions", lesion_id))


def add_lesion(store: Store, subject_id: str, name: str, organ: str | None) -> Lesion:
    return as_lesion(store.insert("lesions", {"subject_id": subject_id, "name": name, "organ": organ}))


def set_lesion_organ(store: Store, lesion_id: str, organ: str) -> Lesion:
    return as_lesion(store.update("lesions", lesion_id, {"organ": organ}))


def update_lesion(store: Store, lesion_id: str, changes: dict[str, Any]) -> Lesion:
    """Change a lesion's descriptive fields (type, bone character, ...), audited as one update."""
    allowed = {"organ", "lesion_type", "recist_status", "bone_character", "notes"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise StoreError(f"A lesion has no field {unknown[0]!r}.")
    return as_lesion(store.update("lesions", lesion_id, dict(changes)))


# ----------------------------------------------------------------------------------- slides
def slides_of_subject(store: Store, subject_id: str) -> list[Slide]:
    """The subject's slides, oldest registration first."""
    return [as_slide(r) for r in store.rows("slides", "subject_id = ?", [subject_id], order_by="created_at")]


def slide_with_fingerprint(store: Store, subject_id: str, fingerprint: str) -> Slide | None:
    rows = store.rows("slides", "subject_id = ? and sha256 = ?", [subject_id, fingerprint])
    return as_slide(rows[0]) if rows else None


def add_slide_row(store: Store, row: dict, detail: dict) -> Slide:
    return as_slide(store.insert("slides", row, detail=detail))


def slide_annotations_of(store: Store, slide_id: str) -> list[SlideAnnotation]:
    rows = store.rows("slide_annotations", "slide_id = ?", [slide_id], order_by="created_at")
    return [as_slide_annotation(r) for r in rows]


# ----------------------------------------------------------------------------- feature sets
def feature_sets_of(store: Store, segmentation_id: str) -> list[FeatureSet]:
    """A segmentation's feature sets, newest first."""
    rows = store.rows("feature_sets", "segmentation_id = ?", [segmentation_id], order_by="created_at desc")
    return [as_feature_set(r) for r in rows]


def feature_sets_from(
    store: Store, segmentation_id: str, params_sha256: str, image_sha256: str, mask_sha256: str
) -> list[dict]:
    """Feature sets computed from exactly these inputs, newest first."""
    return store.rows(
        "feature_sets",
        "segmentation_id = ? and params_sha256 = ? and image_sha256 = ? and mask_sha256 = ?",
        [segmentation_id, params_sha256, image_sha256, mask_sha256],
        order_by="created_at desc",
    )


def add_feature_set(store: Store, row: dict, detail: dict) -> dict:
    """Insert a feature set; `features` and `provenance` (JSON-safe values) become its JSON columns."""
    row = dict(row)
    for key in ("features", "provenance"):
        value = row.pop(key, None)
        # allow_nan=False: a NaN must have been made null by the caller, never written as invalid JSON
        row[f"{key}_json"] = (
            None if value is None else json.dumps(value, default=str, sort_keys=True, allow_nan=False)
        )
    return store.insert("feature_sets", row, detail=detail)


def store_site(store: Store) -> str:
    """The site a store belongs to (XX00 while it has none): the site of readers that a store-wide
    command (batch, parameter lock) records."""
    return store.site_code() or "XX00"


def lesions_of_subject(store: Store, subject_id: str) -> list[Lesion]:
    """The subject's lesions (not the deleted ones), by name."""
    rows = store.rows("lesions", "subject_id = ? and deleted_at is null", [subject_id], order_by="name")
    return [as_lesion(r) for r in rows]


def rename_lesion(store: Store, lesion_id: str, name: str) -> Lesion:
    return as_lesion(store.update("lesions", lesion_id, {"name": name}, action="rename"))


def set_lesion_deleted(store: Store, lesion_id: str, deleted_at: str | None) -> Lesion:
    """Mark a lesion deleted (a time) or restore it (None); audited as a delete or restore."""
    return as_lesion(
        store.update(
            "lesions", lesion_id, {"deleted_at": deleted_at}, action="delete" if deleted_at else "restore"
        )
    )


def segmentation_versions(store: Store, lesion_id: str, series_id: str) -> list[Segmentation]:
    """A lesion's segmentation versions on one series (drafts and finals of every reader), newest first."""
    rows = store.rows(
        "segmentations", "lesion_id = ? and series_id = ?", [lesion_id, series_id], order_by="version desc"
    )
    return [as_segmentation(r) for r in rows]


def segmentations_on_series(store: Store, series_id: str) -> list[Segmentation]:
    """Every segmentation version drawn on a series, newest first."""
    rows = store.rows("segmentations", "series_id = ?", [series_id], order_by="created_at desc, version desc")
    return [as_segmentation(r) for r in rows]


def series_of_subject_oldest_first(store: Store, subject_id: str, modality: str) -> list[Series]:
    """The subject's series of one modality ('CT' or 'PT'), oldest import first (the order lesion
    numbers and exports use; `series_of_subject` is the newest-study-first order of series choice)."""
    rows = store.rows(
        "series", "subject_id = ? and modality = ?", [subject_id, modality], order_by="created_at"
    )
    return [as_series(r) for r in rows]

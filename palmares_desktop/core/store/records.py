"""Queries callers ask by meaning ("the slides of this subject"), so that no module outside
core/store names a table. Rows are still dicts here; typed model objects are the house issue's next step.
"""

from __future__ import annotations

from palmares_desktop.core.store.store import Store


def slides_of_subject(store: Store, subject_id: str) -> list[dict]:
    """The subject's slides, oldest registration first."""
    return store.rows("slides", "subject_id = ?", [subject_id], order_by="created_at")


def slide_with_fingerprint(store: Store, subject_id: str, fingerprint: str) -> dict | None:
    rows = store.rows("slides", "subject_id = ? and sha256 = ?", [subject_id, fingerprint])
    return rows[0] if rows else None


def add_slide_row(store: Store, row: dict, detail: dict) -> dict:
    return store.insert("slides", row, detail=detail)


def feature_sets_of(store: Store, segmentation_id: str) -> list[dict]:
    """A segmentation's feature sets, newest first."""
    return store.rows("feature_sets", "segmentation_id = ?", [segmentation_id], order_by="created_at desc")


def lesion_named(store: Store, subject_id: str, name: str) -> dict | None:
    rows = store.rows("lesions", "subject_id = ? and name = ?", [subject_id, name])
    return rows[0] if rows else None


def add_lesion(store: Store, subject_id: str, name: str, organ: str | None) -> dict:
    return store.insert("lesions", {"subject_id": subject_id, "name": name, "organ": organ})


def set_lesion_organ(store: Store, lesion_id: str, organ: str) -> dict:
    return store.update("lesions", lesion_id, {"organ": organ})


def lesions_of_subject(store: Store, subject_id: str) -> list[dict]:
    """The subject's lesions, by name."""
    return store.rows("lesions", "subject_id = ?", [subject_id], order_by="name")


def segmentation_versions(store: Store, lesion_id: str, series_id: str) -> list[dict]:
    """A lesion's segmentation versions on one series, newest first."""
    return store.rows(
        "segmentations", "lesion_id = ? and series_id = ?", [lesion_id, series_id], order_by="version desc"
    )


def segmentations_on_series(store: Store, series_id: str) -> list[dict]:
    """Every segmentation version drawn on a series, newest first."""
    return store.rows("segmentations", "series_id = ?", [series_id], order_by="created_at desc, version desc")


def series_of_subject(store: Store, subject_id: str, modality: str) -> list[dict]:
    """The subject's series of one modality ('CT' or 'PT'), oldest first."""
    return store.rows(
        "series", "subject_id = ? and modality = ?", [subject_id, modality], order_by="created_at"
    )

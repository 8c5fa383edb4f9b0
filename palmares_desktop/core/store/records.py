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


def store_site(store: Store) -> str:
    """The site a store belongs to (its subjects' commonest site; XX00 while it has none): the
    site of readers a store-wide command (batch, parameter lock) records."""
    rows = list(
        store.db.query(
            "select site_code, count(*) as n from subjects group by site_code order by n desc limit 1"
        )
    )
    return rows[0]["site_code"] if rows else "XX00"

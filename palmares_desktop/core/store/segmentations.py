"""Segmentation chains (schema m004): per (lesion, series, reader) one chain of immutable final
versions 1, 2, ... and at most one draft, its working copy.

A draft is overwritten in place by every autosave (same row, same mask file, revision + 1), never
gets a feature set and is never exported; finalising turns it into the chain's next final version.
Only final versions are handed to the radiomics batch (`final_for_features`).
"""

from __future__ import annotations

from typing import Any

from palmares_desktop.core.model import Segmentation
from palmares_desktop.core.store.records import as_segmentation, json_column
from palmares_desktop.core.store.store import Store, StoreError

_CHAIN = "lesion_id = ? and series_id = ? and reader_id = ?"


def segmentation(store: Store, segmentation_id: str) -> Segmentation:
    return as_segmentation(store.get("segmentations", segmentation_id))


def latest_final(
    store: Store, lesion_id: str, series_id: str, reader_id: str | None = None
) -> Segmentation | None:
    """The chain's newest final version (default chain: the current reader's)."""
    reader_id = reader_id or store._require_reader().id
    rows = store.rows(
        "segmentations",
        _CHAIN + " and status = 'final'",
        [lesion_id, series_id, reader_id],
        order_by="version desc",
    )
    return as_segmentation(rows[0]) if rows else None


def draft(store: Store, lesion_id: str, series_id: str, reader_id: str | None = None) -> Segmentation | None:
    """The chain's draft, if any (default chain: the current reader's)."""
    reader_id = reader_id or store._require_reader().id
    rows = store.rows("segmentations", _CHAIN + " and status = 'draft'", [lesion_id, series_id, reader_id])
    return as_segmentation(rows[0]) if rows else None


def chains_of_lesion(store: Store, lesion_id: str) -> dict[str, list[Segmentation]]:
    """Reader id -> that reader's segmentations of the lesion (finals by version, then the draft)."""
    rows = store.rows(
        "segmentations", "lesion_id = ?", [lesion_id], order_by="series_id, reader_id, status desc, version"
    )
    chains: dict[str, list[Segmentation]] = {}
    for row in rows:
        seg = as_segmentation(row)
        chains.setdefault(seg.reader_id, []).append(seg)
    return chains


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Row values of a segmentation: its parameters and source written as JSON, here only."""
    out = dict(fields)
    if "parameters" in out:
        out["parameters_json"] = json_column(dict(out.pop("parameters") or {}))
    if "source" in out:
        out["source"] = json_column(out["source"])
    return out


def add_final(store: Store, fields: dict[str, Any]) -> Segmentation:
    """Insert the next final version of the current reader's chain for (lesion, series)."""
    reader = store._require_reader()
    with store.transaction():  # the version number is read and used under the write lock
        latest = latest_final(store, fields["lesion_id"], fields["series_id"], reader.id)
        row = {
            **_fields(fields),
            "reader_id": reader.id,
            "status": "final",
            "version": latest.version + 1 if latest else 1,
        }
        return as_segmentation(store.insert("segmentations", row))


def write_draft(store: Store, fields: dict[str, Any]) -> Segmentation:
    """Create the current reader's draft for (lesion, series), or overwrite it in place."""
    reader = store._require_reader()
    with store.transaction():
        current = draft(store, fields["lesion_id"], fields["series_id"], reader.id)
        latest = latest_final(store, fields["lesion_id"], fields["series_id"], reader.id)
        values = {**_fields(fields), "version": latest.version + 1 if latest else 1}
        if current is None:
            return as_segmentation(
                store.insert(
                    "segmentations", {**values, "reader_id": reader.id, "status": "draft"}, action="draft"
                )
            )
        values.pop("id", None)
        changed = {k: v for k, v in values.items() if k not in ("lesion_id", "series_id")}
        return as_segmentation(store.update("segmentations", current.id, changed, action="autosave"))


def finalize(store: Store, draft_id: str) -> Segmentation:
    """Turn a draft into its chain's next final version (same id and mask file).

    A draft identical to the chain's latest final version is discarded and that version returned.
    """
    store._require_reader()
    with store.transaction():
        row = store.get("segmentations", draft_id)
        if row["status"] != "draft":
            raise StoreError(f"Segmentation {draft_id} is already a final version (v{row['version']}).")
        latest = latest_final(store, row["lesion_id"], row["series_id"], row["reader_id"])
        if latest is not None and latest.mask_sha256 == row["mask_sha256"]:
            discard_draft(store, draft_id)
            return latest
        version = latest.version + 1 if latest else 1
        return as_segmentation(
            store.update(
                "segmentations", draft_id, {"status": "final", "version": version}, action="finalize"
            )
        )


def discard_draft(store: Store, draft_id: str) -> None:
    """Drop a draft row (its mask file is the caller's). Final versions are never dropped (m004 trigger)."""
    with store.transaction():
        row = store.get("segmentations", draft_id)
        if row["status"] != "draft":
            raise StoreError(f"Segmentation {draft_id} is a final version; it cannot be discarded.")
        store.db["segmentations"].delete(draft_id)
        store._audit("discard_draft", "segmentations", draft_id, draft_id, None, None)


def final_for_features(store: Store, latest_only: bool = False) -> list[Segmentation]:
    """Every final version whose features the batch keeps current (never a draft), each with its
    `series_modality`, oldest first; with `latest_only`, each chain's latest final version only."""
    query = (
        "select segmentations.*, series.modality as series_modality from segmentations "
        "join series on series.id = segmentations.series_id where segmentations.status = 'final'"
    )
    if latest_only:
        query += (
            " and segmentations.version = (select max(s2.version) from segmentations s2 "
            "where s2.lesion_id = segmentations.lesion_id and s2.series_id = segmentations.series_id "
            "and s2.reader_id is segmentations.reader_id and s2.status = 'final')"
        )
    rows = store.db.query(query + " order by segmentations.created_at, segmentations.id")
    return [as_segmentation(r) for r in rows]


def latest_finals_of_subject(store: Store, subject_id: str) -> list[Segmentation]:
    """The latest final version of each reader's chain on each series of the subject, with the lesion's
    name and organ and the series' modality (the versions the CT/PET room shows)."""
    rows = store.db.query(
        """select s.*, l.name as lesion_name, l.organ as organ, se.modality as series_modality
           from segmentations s join lesions l on l.id = s.lesion_id join series se on se.id = s.series_id
           where l.subject_id = ? and l.deleted_at is null and s.status = 'final' order by l.name, se.modality, s.version desc""",
        [subject_id],
    )
    latest: dict[tuple[str, str, str], Segmentation] = {}
    for row in rows:
        latest.setdefault((row["lesion_id"], row["series_id"], row["reader_id"]), as_segmentation(row))
    return list(latest.values())


def drafts_of_subject(store: Store, subject_id: str, reader_id: str) -> list[Segmentation]:
    """The reader's drafts (unsaved working outlines) of the subject's lesions, with the lesion's name
    and the series' modality, oldest first."""
    return [
        as_segmentation(row)
        for row in store.db.query(
            """select s.*, l.name as lesion_name, l.organ as organ, se.modality as series_modality
               from segmentations s join lesions l on l.id = s.lesion_id join series se on se.id = s.series_id
               where l.subject_id = ? and l.deleted_at is null and s.status = 'draft' and s.reader_id = ?
               order by s.created_at, s.id""",
            [subject_id, reader_id],
        )
    ]


def describe(store: Store, segmentation_id: str) -> str:
    """How a user recognises a segmentation version in messages, e.g. 'IT03-0001 Liver v2'."""
    row = next(
        iter(
            store.db.query(
                "select subjects.code, lesions.name, segmentations.version, segmentations.status "
                "from segmentations join lesions on lesions.id = segmentations.lesion_id "
                "join subjects on subjects.id = lesions.subject_id where segmentations.id = ?",
                [segmentation_id],
            )
        ),
        None,
    )
    if row is None:
        return segmentation_id
    return f"{row['code']} {row['name']} {'draft' if row['status'] == 'draft' else 'v' + str(row['version'])}"

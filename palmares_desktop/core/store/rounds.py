"""Rows of reader-study rounds (schema m010): rounds, assignments and the work each produced."""

from __future__ import annotations

from palmares_desktop.core.store.store import Store, StoreError


def add_round(store: Store, row: dict) -> dict:
    return store.insert("reading_rounds", row)


def round_named(store: Store, name: str) -> dict:
    rows = store.rows("reading_rounds", "name = ?", [name])
    if not rows:
        known = ", ".join(r["name"] for r in store.rows("reading_rounds", order_by="name")) or "none yet"
        raise StoreError(f"There is no reading round named {name!r} (rounds: {known}).")
    return rows[0]


def round_exists(store: Store, name: str) -> bool:
    return bool(store.rows("reading_rounds", "name = ?", [name]))


def rounds(store: Store) -> list[dict]:
    return store.rows("reading_rounds", order_by="created_at")


def set_round_status(store: Store, round_id: str, status: str) -> dict:
    return store.update("reading_rounds", round_id, {"status": status})


def add_assignments(store: Store, rows: list[dict]) -> None:
    with store.transaction():
        for row in rows:
            store.insert("round_assignments", row, detail={"round_id": row["round_id"]})


def assignments(store: Store, round_id: str | None = None, reader_id: str | None = None) -> list[dict]:
    where, args = [], []
    if round_id:
        where.append("round_id = ?")
        args.append(round_id)
    if reader_id:
        where.append("reader_id = ?")
        args.append(reader_id)
    return store.rows("round_assignments", " and ".join(where) or None, args, order_by="position, repeat")


def assignment(store: Store, assignment_id: str) -> dict:
    return store.get("round_assignments", assignment_id)


def finish_assignment(store: Store, assignment_id: str, at: str) -> dict:
    return store.update("round_assignments", assignment_id, {"status": "done", "done_at": at}, action="done")


def link_work(store: Store, assignment_id: str, lesion_id: str, segmentation_id: str) -> dict:
    """The assignment's segmentation of a lesion (a newer final version replaces the link)."""
    with store.transaction():
        rows = store.rows("round_work", "assignment_id = ? and lesion_id = ?", [assignment_id, lesion_id])
        if rows:
            return store.update("round_work", rows[0]["id"], {"segmentation_id": segmentation_id})
        return store.insert(
            "round_work",
            {"assignment_id": assignment_id, "lesion_id": lesion_id, "segmentation_id": segmentation_id},
        )


def work_of(store: Store, assignment_ids: list[str]) -> list[dict]:
    if not assignment_ids:
        return []
    marks = ", ".join("?" for _ in assignment_ids)
    return store.rows("round_work", f"assignment_id in ({marks})", assignment_ids)


def segmentations_in_rounds(store: Store, subject_id: str) -> dict[str, str]:
    """Segmentation id -> assignment id, for every round segmentation of a subject."""
    return {
        r["segmentation_id"]: r["assignment_id"]
        for r in store.db.query(
            "SELECT w.segmentation_id, w.assignment_id FROM round_work w"
            " JOIN round_assignments a ON a.id = w.assignment_id WHERE a.subject_id = ?",
            [subject_id],
        )
    }


def open_blinded_assignments(store: Store, subject_id: str, reader_id: str) -> list[dict]:
    """The reader's assignments of this subject in open, blinded rounds (newest repeat last)."""
    return list(
        store.db.query(
            "SELECT a.* FROM round_assignments a JOIN reading_rounds r ON r.id = a.round_id"
            " WHERE a.subject_id = ? AND a.reader_id = ? AND r.blinded = 1 AND r.status = 'open'"
            " ORDER BY a.repeat",
            [subject_id, reader_id],
        )
    )


def round_modality(store: Store, round_id: str) -> str:
    return store.get("reading_rounds", round_id)["modality"]

"""What the CT/PET room shows for a subject: which CT and PET to fuse, and the current version of
each lesion's segmentations. Store reads only; the room decides nothing itself."""

from __future__ import annotations

from palmares_desktop.core.store import Store


def subject_series(store: Store, subject_id: str) -> tuple[dict | None, dict | None, list[str]]:
    """Pick the CT and the PET to show: the first CT, and the PET sharing its frame of reference."""
    notes = []
    cts = store.rows("series", "subject_id = ? and modality = 'CT'", [subject_id], order_by="created_at")
    pets = store.rows("series", "subject_id = ? and modality = 'PT'", [subject_id], order_by="created_at")
    ct = cts[0] if cts else None
    pet = None
    if pets:
        same_frame = [p for p in pets if ct and p["frame_of_reference_uid"] == ct["frame_of_reference_uid"]]
        pet = same_frame[0] if same_frame else pets[0]
        if ct and not same_frame:
            notes.append("PET and CT do not share a frame of reference: the fusion may be misaligned.")
    if len(cts) > 1 or len(pets) > 1:
        notes.append(f"{len(cts)} CT and {len(pets)} PET series in the store; showing the first of each.")
    return ct, pet, notes


def subject_segmentations(store: Store, subject_id: str) -> list[dict]:
    """Latest version of each lesion's segmentation on each series of the subject."""
    rows = store.db.query(
        """select s.*, l.name as lesion_name, l.organ as organ, se.modality as series_modality
           from segmentations s join lesions l on l.id = s.lesion_id join series se on se.id = s.series_id
           where l.subject_id = ? order by l.name, se.modality, s.version desc""",
        [subject_id],
    )
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:
        latest.setdefault((row["lesion_id"], row["series_id"]), dict(row))
    return list(latest.values())

"""What the CT/PET room shows for a subject: which CT and PET to fuse, and the current version of
each lesion's segmentations. Store reads only; the room decides nothing itself."""

from __future__ import annotations

from palmares_desktop.core.model import Lesion, Segmentation, Series
from palmares_desktop.core.series_choice import SeriesChoice, choose_series
from palmares_desktop.core.store import Store
from palmares_desktop.core.store.records import segmentation_versions
from palmares_desktop.core.store.segmentations import latest_finals_of_subject
from palmares_desktop.core.study.rounds import visible_segmentations


def subject_choices(
    store: Store, subject_id: str, ct_id: str | None = None, pet_id: str | None = None
) -> tuple[SeriesChoice | None, SeriesChoice | None]:
    """The CT and PET to show (core/series_choice.py's rule), each with the alternatives."""
    ct = choose_series(store, subject_id, "CT", ct_id)
    pet = choose_series(store, subject_id, "PT", pet_id, same_frame_as=ct.chosen if ct else None)
    return ct, pet


def subject_series(
    store: Store, subject_id: str, ct_id: str | None = None, pet_id: str | None = None
) -> tuple[Series | None, Series | None, list[str]]:
    """The CT and PET series to fuse, and notes for the user (which series when there are several)."""
    ct, pet = subject_choices(store, subject_id, ct_id, pet_id)
    notes = []
    if ct and pet and pet.chosen.frame_of_reference_uid != ct.chosen.frame_of_reference_uid:
        notes.append("PET and CT do not share a frame of reference: the fusion may be misaligned.")
    notes += [c.note for c in (ct, pet) if c is not None and c.note]
    return (ct.chosen if ct else None, pet.chosen if pet else None, notes)


def subject_segmentations(store: Store, subject_id: str) -> list[Segmentation]:
    """Latest final version of each reader's segmentation of each lesion on each series of the subject,
    less what the current reader is blinded to in an open reading round (core/study/rounds.py)."""
    found = latest_finals_of_subject(store, subject_id)
    if store.reader is None:
        return found
    return visible_segmentations(store, store.reader.id, subject_id, found)


def version_in_use(store: Store, lesion: Lesion, series_id: str) -> Segmentation | None:
    """The final version a tool reports or exports for `lesion` on a series: the current reader's own
    newest final version, else the newest final version of another reader; only what the current
    reader may see (a blinded round hides the others' work and their own earlier repeat), never a
    draft."""
    finals = [v for v in segmentation_versions(store, lesion.id, series_id) if v.is_final]
    if store.reader is None:
        return finals[0] if finals else None
    visible = visible_segmentations(store, store.reader.id, lesion.subject_id, finals)
    own = [v for v in visible if v.reader_id == store.reader.id]
    if own:
        return max(own, key=lambda v: v.version)
    return max(visible, key=lambda v: v.created_at) if visible else None

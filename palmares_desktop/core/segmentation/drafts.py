"""A reader's working segmentation: autosaved as the draft of their chain, then finalised.

`save_draft` overwrites the chain's one draft in place (same row, a fresh mask file), so autosaving every
few seconds neither floods versions nor starts feature jobs; `finalize` makes it the chain's next
immutable final version, which the radiomics batch then computes and exports will carry. Two readers
working on one lesion have two chains (core/store/segmentations.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.modalities import display_of
from palmares_desktop.core.model import Segmentation
from palmares_desktop.core.segmentation.geometry import check_geometry
from palmares_desktop.core.segmentation.labelmaps import _lesion, target_of
from palmares_desktop.core.store import Store, file_sha256
from palmares_desktop.core.store import segmentations as chains
from palmares_desktop.core.store.files import discard, publish
from palmares_desktop.core.store.store import new_id

if TYPE_CHECKING:
    from palmares_desktop.core.session import MaskSnapshot


def save_draft(
    store: Store,
    subject_code: str,
    modality: str,
    mask: sitk.Image | MaskSnapshot,
    lesion_name: str,
    organ: str | None = None,
    method: str = "drawn",
    parameters: Mapping[str, Any] | None = None,
    series_id: str | None = None,
    label: int = 1,
) -> Segmentation:
    """Save `mask` (voxels equal to `label`, on the series' grid) as the current reader's draft of the
    lesion on that series; an empty mask is a valid draft (everything erased). `mask` may be an
    image or a session's `MaskSnapshot` (the editor's: rebuilt here, in the worker); both write the
    same file, byte for byte."""
    subject, series, image_name, grid = target_of(store, subject_code, modality, series_id)
    if isinstance(mask, sitk.Image):
        check_geometry(mask, grid, image_name=image_name)
        inside = sitk.GetArrayViewFromImage(mask) == label
        array, voxels = inside.view(np.uint8), int(np.count_nonzero(inside))  # bool is 0/1 bytes
    else:
        check_geometry(mask.grid, grid, image_name=image_name)
        array, voxels = mask.binary(label)
    binary = grid.apply_to(sitk.GetImageFromArray(array))

    with store.transaction():
        lesion = _lesion(store, subject, lesion_name, organ)
        current = chains.draft(store, lesion.id, series.id)
        seg_id = current.id if current else new_id()
        # Each save writes a new file (never over the committed one): a kill between the rename and
        # COMMIT then leaves the old row with its old, intact mask, and the new file as an orphan.
        relative = store.files.relative(store.files.mask(f"{seg_id}-{new_id()[:8]}"))
        target = store.path(relative)
        staging = store.files.staging(target)  # see core/store/files.py
        sitk.WriteImage(binary, str(staging), useCompression=True)
        try:
            fields = {
                "lesion_id": lesion.id,
                "series_id": series.id,
                "method": method,
                "parameters": parameters,
                "mask_path": relative,
                "mask_sha256": file_sha256(staging),
                "label": 1,
                "voxel_count": voxels,
                "volume_ml": voxels * grid.voxel_volume_mm3() / 1000.0,
                "source": {"format": "drawn"},
            }
            if current is None:
                fields["id"] = seg_id
            saved = chains.write_draft(store, fields)
            publish(staging, target)  # last step: a failure rolls the row back with it
        except BaseException:
            discard(staging)
            raise
    if current is not None:
        discard(store.path(current.mask_path))  # after COMMIT; if killed first, reopening removes it
    return saved


def finalize(store: Store, draft_id: str) -> Segmentation:
    """The draft becomes its chain's next final version (or, unchanged since the latest final version,
    is dropped and that version returned)."""
    draft = chains.segmentation(store, draft_id)
    final = chains.finalize(store, draft_id)
    if final.id != draft_id:
        discard(store.path(draft.mask_path))
    return final


def discard_draft(store: Store, draft_id: str) -> None:
    """Throw the draft away (the chain's final versions stay)."""
    draft = chains.segmentation(store, draft_id)
    chains.discard_draft(store, draft_id)
    discard(store.path(draft.mask_path))


def reader_draft(store: Store, lesion_id: str, series_id: str) -> Segmentation | None:
    """The current reader's draft of the lesion on that series that editing should resume (what an
    interrupted edit left), if any. A draft older than the reader's newest final version (saved since
    by a tool or a clean-up) is not offered: resuming it would silently undo that version."""
    draft = chains.draft(store, lesion_id, series_id)
    if draft is None:
        return None
    latest = chains.latest_final(store, lesion_id, series_id, draft.reader_id)
    return draft if latest is None or draft.version > latest.version else None


def unsaved_drafts(store: Store, subject_id: str) -> list[Segmentation]:
    """The current reader's drafts of the subject that editing would resume (with lesion_name and
    series_modality): work autosaved but never saved or cancelled, e.g. before a crash. Empty without
    a reader."""
    if store.reader is None:
        return []
    drafts = chains.drafts_of_subject(store, subject_id, store.reader.id)
    return [d for d in drafts if reader_draft(store, d.lesion_id, d.series_id) is not None]


def drafts_sentence(drafts: list[Segmentation]) -> str | None:
    """One sentence offering the drafts back in the room, None when there are none."""
    if not drafts:
        return None
    names = ", ".join(
        f"{d.lesion_name} ({display_of(d.series_modality)}, "
        f"begun {str(d.created_at or '')[:16].replace('T', ' ')})"
        for d in drafts
    )
    return (
        f"Unsaved draft{'s' if len(drafts) > 1 else ''} of {names}: select the lesion and press Edit "
        "selected (Edit tab) to resume it (Save keeps it, Cancel throws it away)."
    )


def drawn_method(tools: list[str]) -> str:
    """The method a version edited in the outline editor records, from the tools used (first use
    first): "brush" for the 2D brush alone (or nothing), else e.g. "drawn: brush, sphere eraser, fill 3D"."""
    used = list(dict.fromkeys(tools))
    return "brush" if set(used) <= {"brush"} else "drawn: " + ", ".join(used)

"""Reader chains and drafts (m004) on the real dcmqi 3-slice CT and liver masks."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import SimpleITK as sitk
from series_fixture import import_ct

from palmares_desktop.core.radiomics.batch import run_batch
from palmares_desktop.core.radiomics.store_features import compute_features_for_segmentation, pending_work
from palmares_desktop.core.segmentation.drafts import discard_draft, finalize, save_draft
from palmares_desktop.core.segmentation.labelmaps import add_segmentation
from palmares_desktop.core.store import StoreError, file_sha256
from palmares_desktop.core.store import segmentations as chains

SUBJECT = "IT03-0001"
LIVER_VOXELS = 107098  # label 1 of dcmqi's liver_seg.nrrd


@pytest.fixture
def liver(store, shared_data):
    """The 3-slice CT imported; returns the liver label map (an image on the CT grid)."""
    folder = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, folder / "ct", SUBJECT)
    return sitk.ReadImage(str(folder / "seg" / "liver_seg.nrrd"))


def _eroded(mask: sitk.Image, radius: int) -> sitk.Image:
    one = sitk.Cast(mask == 1, sitk.sitkUInt8)
    return sitk.BinaryErode(one, [radius, radius, 0]) if radius else one


def test_two_readers_on_one_lesion_have_two_chains(store, liver):
    first = store.reader
    a1 = add_segmentation(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    a2 = add_segmentation(store, SUBJECT, "CT", _eroded(liver, 2), lesion_name="Liver")
    store.use_reader(store.add_reader("Dr Bianchi", "radiologist", "IT03"))
    # The same mask as reader 1's v1 is reader 2's own v1, not a duplicate of someone else's work.
    b1 = add_segmentation(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    assert (a1.version, a2.version, b1.version) == (1, 2, 1)
    assert a1.lesion_id == b1.lesion_id and b1.id != a1.id
    chain = chains.chains_of_lesion(store, a1.lesion_id)
    assert {r: [(s.version, s.status) for s in segs] for r, segs in chain.items()} == {
        first.id: [(1, "final"), (2, "final")],
        store.reader.id: [(1, "final")],
    }
    assert chain[first.id][0].voxel_count == LIVER_VOXELS == chain[store.reader.id][0].voxel_count


def test_five_autosaves_make_one_draft_row_and_no_feature_job(store, liver):
    final = add_segmentation(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    assert pending_work(store) == [(final.id, "ct")]
    counts = []
    for radius in range(1, 6):
        draft = save_draft(store, SUBJECT, "CT", _eroded(liver, radius), lesion_name="Liver")
        counts.append(draft.voxel_count)
    drafts = store.rows("segmentations", "status = 'draft'")
    assert len(drafts) == 1 and len(store.rows("segmentations")) == 2
    row = drafts[0]
    assert (row["id"], row["revision"], row["version"]) == (draft.id, 5, 2)  # the draft of v2, saved 5 times
    assert counts == sorted(counts, reverse=True) and counts[0] < LIVER_VOXELS
    expected = int(sitk.GetArrayFromImage(_eroded(liver, 5)).sum())
    assert (
        draft.voxel_count
        == expected
        == int(sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(draft.mask_path)))).sum())
    )
    assert draft.mask_sha256 == file_sha256(store.path(draft.mask_path))
    # One file per row: each save wrote a fresh file and removed the one it replaced after COMMIT.
    assert sorted(p.relative_to(store.root).as_posix() for p in store.path("masks").iterdir()) == sorted(
        [final.mask_path, draft.mask_path]
    )
    # Drafts never become feature jobs: not planned, and refused when asked for directly.
    assert pending_work(store) == [(final.id, "ct")]
    with pytest.raises(
        StoreError, match=r"^The IT03-0001 Liver draft has no features until it is finalised\.$"
    ):
        compute_features_for_segmentation(store, draft.id)
    assert store.rows("feature_sets") == []
    # Five autosaves are one create and four updates of that one row.
    audit = [a["action"] for a in store.rows("audit_log", "row_id = ?", [draft.id], order_by="seq")]
    assert audit == ["draft", "autosave", "autosave", "autosave", "autosave"]


def test_finalize_makes_the_next_immutable_version(store, liver):
    add_segmentation(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    draft = save_draft(store, SUBJECT, "CT", _eroded(liver, 3), lesion_name="Liver", method="brush")
    final = finalize(store, draft.id)
    assert (final.id, final.status, final.version, final.method) == (draft.id, "final", 2, "brush")
    audit = store.rows("audit_log", "row_id = ?", [draft.id], order_by="seq")
    assert [a["action"] for a in audit] == ["draft", "finalize"]
    with pytest.raises(sqlite3.DatabaseError, match="a final segmentation version cannot be changed"):
        store.update("segmentations", final.id, {"voxel_count": 1})
    with pytest.raises(StoreError, match="already a final version"):
        finalize(store, final.id)
    # A draft identical to the latest final version adds nothing: it is dropped, v2 returned.
    again = save_draft(store, SUBJECT, "CT", _eroded(liver, 3), lesion_name="Liver")
    assert finalize(store, again.id).id == final.id
    assert store.rows("segmentations", "status = 'draft'") == []
    assert not store.path(f"masks/{again.id}.nrrd").exists()
    # A discarded draft leaves the finals alone.
    thrown = save_draft(store, SUBJECT, "CT", _eroded(liver, 1), lesion_name="Liver")
    discard_draft(store, thrown.id)
    assert [r["version"] for r in store.rows("segmentations", order_by="version")] == [1, 2]
    assert len(list(store.path("masks").iterdir())) == 2


def test_an_empty_draft_is_kept_and_the_draft_follows_its_reader(store, liver):
    empty = save_draft(store, SUBJECT, "CT", sitk.Cast(liver * 0, sitk.sitkUInt8), lesion_name="Liver")
    assert (empty.voxel_count, empty.version, empty.status) == (0, 1, "draft")
    store.use_reader(store.add_reader("Dr Bianchi", "radiologist", "IT03"))
    other = save_draft(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    assert other.id != empty.id and len(store.rows("segmentations", "status = 'draft'")) == 2
    assert np.array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(other.mask_path)))),
        sitk.GetArrayFromImage(_eroded(liver, 0)),
    )


def test_the_batch_ignores_drafts(store, liver):
    final = add_segmentation(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    draft = save_draft(store, SUBJECT, "CT", _eroded(liver, 2), lesion_name="Liver")
    root = store.root
    store.close()
    summary = run_batch(root, workers=1)
    from palmares_desktop.core.store import Store

    with Store.open(root, create=False) as s:
        done = {r["segmentation_id"] for r in s.rows("feature_sets")}
    # The 3-slice liver's extraction fails for a real reason (too thin); it is stored, the draft is not.
    assert summary.computed + len(summary.failed) == 1 and done == {final.id}
    assert draft.id not in done


def test_a_draft_is_offered_back_only_while_it_is_newer_than_the_readers_final_versions(store, liver):
    from palmares_desktop.core.segmentation.drafts import drafts_sentence, reader_draft, unsaved_drafts

    v1 = add_segmentation(store, SUBJECT, "CT", _eroded(liver, 0), lesion_name="Liver")
    subject_id = store.subject_by_code(SUBJECT).id
    assert unsaved_drafts(store, subject_id) == [] and drafts_sentence([]) is None
    draft = save_draft(store, SUBJECT, "CT", _eroded(liver, 2), lesion_name="Liver")  # then a crash
    assert reader_draft(store, v1.lesion_id, v1.series_id).id == draft.id
    (offered,) = unsaved_drafts(store, subject_id)
    assert offered.id == draft.id and offered.series_modality == "CT"
    assert drafts_sentence([offered]).startswith("Unsaved draft of Liver (CT, begun ")
    # A tool saves a newer final version meanwhile (e.g. a clean-up): resuming the draft would undo
    # it, so the draft is no longer offered.
    add_segmentation(store, SUBJECT, "CT", _eroded(liver, 1), lesion_name="Liver")
    assert reader_draft(store, v1.lesion_id, v1.series_id) is None
    assert unsaved_drafts(store, subject_id) == []


def test_an_edited_outline_records_its_tool_chain():
    from palmares_desktop.core.segmentation.drafts import drawn_method

    assert drawn_method([]) == drawn_method(["brush", "brush"]) == "brush"
    assert (
        drawn_method(["brush", "fill 2D", "brush", "sphere eraser"]) == "drawn: brush, fill 2D, sphere eraser"
    )

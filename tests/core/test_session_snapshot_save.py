"""The outline editor's save path: a session snapshot (the nonzero box, copied on the GUI thread) is
rebuilt and written in the worker. It must store what the old path stored (the whole working mask
converted on the GUI thread): the same voxels, the same file byte for byte (so sha256 comparisons with
earlier versions still hold), on every axis-aligned orientation of the stored grid."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from series_fixture import import_ct

from palmares_desktop.core.segmentation.drafts import finalize, save_draft
from palmares_desktop.core.segmentation.labelmaps import add_segmentation, target_of
from palmares_desktop.core.session import ReadingSession
from palmares_desktop.core.store import file_sha256

SUBJECT = "IT03-0001"


@pytest.mark.parametrize("permutation", list(itertools.permutations(range(3))))
def test_a_snapshot_rebuilds_the_stored_mask_on_every_orientation(permutation):
    rng = np.random.default_rng(sum(permutation))
    for signs in itertools.product((1, -1), repeat=3):
        direction = np.zeros((3, 3))
        for row, column in enumerate(permutation):
            direction[row, column] = signs[row]
        image = sitk.Image([7, 9, 11], sitk.sitkUInt8)
        image.SetDirection(tuple(direction.ravel()))
        session = ReadingSession.for_mask({}, None, image)
        session.mask[2:5, 1:3, 3:6] = rng.integers(0, 3, (3, 2, 3))  # labels 0, 1 and 2
        session.mask[1, 2, 2] = 2
        snapshot = session.snapshot()
        assert snapshot.box == (slice(1, 5), slice(1, 3), slice(2, 6))
        stored = session.placement.to_stored_array(session.mask)
        for label in (1, 2):
            array, voxels = snapshot.binary(label)
            np.testing.assert_array_equal(array, (stored == label).astype(np.uint8))
            assert voxels == int((stored == label).sum())
    empty = ReadingSession.for_mask({}, None, sitk.Image([7, 9, 11], sitk.sitkUInt8)).snapshot()
    array, voxels = empty.binary()
    assert voxels == 0 and array.shape == (11, 9, 7) and not array.any()


def _old_path_sha(store, session: ReadingSession, label: int = 1) -> str:
    """sha256 of the file the old save path wrote: the whole mask converted, `== label` as uint8, on
    the series' own grid, compressed NRRD."""
    grid = target_of(store, SUBJECT, "CT")[3]
    stored = session.stored_mask()
    image = grid.apply_to(
        sitk.GetImageFromArray((sitk.GetArrayViewFromImage(stored) == label).astype(np.uint8))
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old.nrrd"
        sitk.WriteImage(image, str(path), useCompression=True)
        return file_sha256(path)


def test_the_snapshot_path_writes_the_old_paths_file_byte_for_byte(store, shared_data):
    folder = shared_data / "ct_3slice_seg_dcmqi"
    import_ct(store, folder / "ct", SUBJECT)
    liver = sitk.Cast(sitk.ReadImage(str(folder / "seg" / "liver_seg.nrrd")) == 1, sitk.sitkUInt8)
    final = add_segmentation(store, SUBJECT, "CT", liver, lesion_name="Liver")

    session = ReadingSession.for_mask({"code": SUBJECT}, None, liver)
    # Unchanged: the draft is the final version's file exactly, so Save drops it as a duplicate.
    unchanged = save_draft(store, SUBJECT, "CT", session.snapshot(), lesion_name="Liver")
    assert unchanged.mask_sha256 == final.mask_sha256 == _old_path_sha(store, session)
    assert finalize(store, unchanged.id).id == final.id

    # Edited: painted with label 1 and with another label (2 is not the lesion: stored as 0).
    session.change((slice(0, 2), slice(100, 140), slice(60, 90)), 1)
    session.change((slice(1, 3), slice(300, 330), slice(200, 260)), 2)
    draft = save_draft(store, SUBJECT, "CT", session.snapshot(), lesion_name="Liver")
    written = store.path(draft.mask_path)
    assert draft.mask_sha256 == file_sha256(written) == _old_path_sha(store, session)
    stored = sitk.GetArrayFromImage(session.stored_mask())
    on_disk = sitk.ReadImage(str(written))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(on_disk), (stored == 1).astype(np.uint8))
    assert on_disk.GetPixelID() == sitk.sitkUInt8 and on_disk.GetSize() == liver.GetSize()
    assert (
        draft.voxel_count == int((stored == 1).sum()) == int(sitk.GetArrayViewFromImage(liver).sum()) + 2400
    )

    # The image path (other callers) still writes the same file and counts.
    again = save_draft(store, SUBJECT, "CT", session.stored_mask(), lesion_name="Liver")
    assert (again.id, again.mask_sha256, again.voxel_count) == (
        draft.id,
        draft.mask_sha256,
        draft.voxel_count,
    )
    assert finalize(store, again.id).version == 2

    # Everything erased: an empty snapshot is an empty draft.
    session.change((slice(None),) * 3, 0)
    empty = save_draft(store, SUBJECT, "CT", session.snapshot(), lesion_name="Liver")
    assert empty.voxel_count == 0 and empty.mask_sha256 == _old_path_sha(store, session)

"""The reading session on a real demo CT mask: undo/redo restore the mask bit for bit, history memory
stays a small fraction of a mask copy and is bounded, and autosave fires on pause or after a delay."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from palmares_desktop.core.session import AutosaveClock, EditHistory, ReadingSession

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_v1" / "store_v1_db_masks.tar.xz"


@pytest.fixture(scope="module")
def ct_mask(tmp_path_factory) -> sitk.Image:
    """A real demo lesion mask on the demo CT grid (320 x 320 x 120), stored with x and y reversed."""
    root = tmp_path_factory.mktemp("v1")
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(root, filter="data")
    masks = [sitk.ReadImage(str(p)) for p in sorted((root / "masks").glob("*.nrrd"))]
    ct = max(
        (m for m in masks if m.GetSize() == (320, 320, 120)),
        key=lambda m: sitk.GetArrayViewFromImage(m).sum(),
    )
    return sitk.Flip(ct, (True, True, False))


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _ball(shape, centre, radius) -> tuple[tuple[slice, ...], np.ndarray]:
    box = tuple(slice(c - radius, c + radius + 1) for c in centre)
    grid = np.ogrid[tuple(slice(-radius, radius + 1) for _ in centre)]
    return box, sum(g.astype(float) ** 2 for g in grid) <= radius**2


def test_undo_and_redo_restore_the_mask_bit_for_bit_and_save_on_the_stored_grid(ct_mask):
    session = ReadingSession.for_mask({"code": "IT99-0001"}, None, ct_mask)
    original = session.mask.copy()
    assert int((original > 0).sum()) == int(sitk.GetArrayViewFromImage(ct_mask).sum()) == 896
    box, ball = _ball(session.mask.shape, (60, 160, 160), 6)
    assert session.change(box, np.where(ball, 2, session.mask[box]))
    after_paint = session.mask.copy()
    assert session.change((slice(40, 80), slice(150, 170), slice(150, 170)), 0)  # erase through it
    assert not session.change((slice(40, 80), slice(150, 170), slice(150, 170)), 0)  # no-op: no step
    after_erase = session.mask.copy()
    assert session.undo() is not None
    np.testing.assert_array_equal(session.mask, after_paint)
    assert session.undo() == (slice(54, 67), slice(154, 167), slice(154, 167))  # the ball's own box
    np.testing.assert_array_equal(session.mask, original)
    assert session.undo() is None and session.history.can_redo
    session.redo()
    session.redo()
    np.testing.assert_array_equal(session.mask, after_erase)
    session.undo()
    session.undo()
    stored = session.stored_mask()  # back on the flipped stored grid, voxel for voxel
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(stored), sitk.GetArrayViewFromImage(ct_mask))
    assert stored.GetDirection() == ct_mask.GetDirection() and stored.GetOrigin() == ct_mask.GetOrigin()


def test_history_stores_changed_boxes_not_copies_and_stays_bounded(ct_mask):
    session = ReadingSession.for_mask({"code": "IT99-0001"}, None, ct_mask)
    full = session.mask.nbytes
    assert full == 320 * 320 * 120  # uint8, 12.3 MB
    box, ball = _ball(session.mask.shape, (60, 100, 100), 5)
    session.change(box, np.where(ball, 3, session.mask[box]))
    step_bytes = session.history.nbytes
    assert step_bytes == 2 * 11**3 and step_bytes < full / 4000  # a brush step: 2.7 kB, not 12 MB
    # A thin diagonal stroke across the slice: its box is large, so only its voxels are kept.
    diagonal = np.arange(200)
    before = session.history.nbytes
    session.mask[30, 60 + diagonal, 60 + diagonal] = 4  # as a viewer paints in place
    assert session.record_painted((np.full(200, 30), 60 + diagonal, 60 + diagonal), np.zeros(200, np.uint8))
    stroke = session.history.nbytes - before
    assert stroke == 200 * 4 + 2 * 200 and stroke < 200 * 200 * 2 / 40  # sparse: 1.2 kB against 80 kB
    session.undo()
    assert not (session.mask[30] == 4).any()
    session.redo()
    assert int((session.mask[30] == 4).sum()) == 200
    # Bounded: with room for about three ball steps, the oldest are forgotten.
    bounded = ReadingSession.for_mask({}, None, ct_mask, history=EditHistory(max_bytes=3 * step_bytes + 10))
    original = bounded.mask.copy()
    for n in range(6):
        box, ball = _ball(bounded.mask.shape, (20 + 12 * n, 100, 100), 5)
        bounded.change(box, np.where(ball, 5, bounded.mask[box]))
    assert bounded.history.dropped == 3 and bounded.history.nbytes <= 3 * step_bytes + 10
    undone = 0
    while bounded.undo() is not None:
        undone += 1
    assert undone == 3 and int((bounded.mask == 5).sum()) == 3 * int(ball.sum())  # the first three stay
    assert not np.array_equal(bounded.mask, original)


def test_a_new_edit_ends_the_redo_branch(ct_mask):
    session = ReadingSession.for_mask({}, None, ct_mask)
    session.change((slice(0, 2), slice(0, 2), slice(0, 2)), 7)
    session.undo()
    assert session.history.can_redo
    session.change((slice(5, 6), slice(5, 6), slice(5, 6)), 8)
    assert not session.history.can_redo and session.redo() is None


def test_autosave_waits_for_a_pause_but_never_longer_than_the_maximum_delay(ct_mask):
    clock = FakeClock()
    session = ReadingSession.for_mask({}, None, ct_mask, autosave=AutosaveClock(3.0, 30.0, clock))
    assert not session.dirty and not session.autosave_due() and session.autosave.seconds_until_due() is None
    session.change((slice(0, 1), slice(0, 1), slice(0, 1)), 1)
    assert session.dirty and session.autosave.seconds_until_due() == 3.0
    clock.t += 2.9
    assert not session.autosave_due()
    clock.t += 0.1
    assert session.autosave_due()
    session.mark_saved()
    assert not session.dirty and not session.autosave_due()
    # A reader painting every second without a pause: saved 30 s after the first unsaved edit.
    for n in range(31):
        session.change((slice(1, 2), slice(1, 2), slice(1, 2)), n % 2 + 1)
        if n < 30:
            assert not session.autosave_due(), n
        clock.t += 1.0
    assert session.autosave_due()
    session.mark_saved()
    session.undo()  # an undo is an edit too: the saved draft no longer matches
    assert session.dirty


def test_boxes_with_steps_and_wrong_masks_are_refused(ct_mask):
    session = ReadingSession.for_mask({}, None, ct_mask)
    with pytest.raises(ValueError, match="plain block"):
        session.change((slice(0, 4, 2), slice(0, 1), slice(0, 1)), 1)
    with pytest.raises(ValueError, match="display shape"):
        ReadingSession({}, None, np.zeros((2, 2, 2), np.uint8), session.placement)

"""Whole-body PET candidates in the real CT/PET room on a copy of the demo store: PERCIST from the
liver reference the reader placed finds every planted lesion with its SUVmax; selecting one moves
the views to it; accepting saves it as a lesion by the current reader; rejecting only sets it aside."""

from __future__ import annotations

import os

import numpy as np
import pytest

from palmares_desktop.core.demo.demo_store import PET_GRID
from palmares_desktop.core.demo.phantom import make_subject
from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
from tests.gui.test_ct_pet_room import LOAD_TIMEOUT_MS, open_subject

pytestmark = pytest.mark.gui


def _voxel(centre_xyz) -> tuple[int, int, int]:
    """(z, y, x) index of a point on the demo PET grid."""
    index = [
        round((c - o) / s) for c, o, s in zip(centre_xyz, PET_GRID.origin, PET_GRID.spacing, strict=True)
    ]
    return index[2], index[1], index[0]


def test_candidates_find_every_planted_lesion_and_accepting_one_saves_it(copy_window, qtbot, tmp_path):
    window, store = copy_window, copy_window.store
    subject = open_subject(window, qtbot)
    room = window.ct_pet
    tool = room.candidates
    phantom = make_subject(1, PET_GRID)
    tool.find_candidates()  # PERCIST without a liver reference: refused in words
    qtbot.waitUntil(lambda: tool.find.isEnabled(), timeout=LOAD_TIMEOUT_MS)
    assert "liver" in tool.message.text().lower() and tool.table.rowCount() == 0
    room.threshold.place_liver(tuple(reversed(phantom.liver_reference)))  # the reader's click, (z, y, x)
    with qtbot.waitSignal(tool.listed, timeout=LOAD_TIMEOUT_MS):
        tool.find_candidates()
    result = tool.result
    assert tool.table.rowCount() == len(result.candidates) > 0
    suv = [c.suv_max for c in result.candidates]
    assert suv == sorted(suv, reverse=True)  # hottest first
    by_label = {c.label: c for c in result.candidates}
    for lesion in phantom.lesions:  # every planted lesion is (in) a candidate, with its SUVmax
        found = by_label.get(int(result.labels[_voxel(lesion.centre)]))
        assert found is not None, lesion.name
        assert found.suv_max == pytest.approx(lesion.suv_max, rel=0.02), lesion.name
    flagged = [r for r, c in enumerate(result.candidates) if c.likely_physiological]
    for row in flagged:
        assert tool.table.item(row, 4).text().startswith("likely physiological")

    # Select the vertebral metastasis: the views move to its hottest voxel.
    lesion = next(x for x in phantom.lesions if x.name == "vertebral metastasis")
    candidate = by_label[int(result.labels[_voxel(lesion.centre)])]
    row = result.candidates.index(candidate)
    tool.table.selectRow(row)
    assert room.viewer.model.dims.point[0] == pytest.approx(candidate.hottest_mm[2], abs=PET_GRID.spacing[2])
    # Reject another one: only set aside, nothing stored.
    before = len(store.rows("segmentations"))
    other = (row + 1) % len(result.candidates)
    tool.table.selectRow(other)
    tool.reject_selected()
    assert tool.table.item(other, 5).text() == "rejected" and not tool.accept.isEnabled()
    assert len(store.rows("segmentations")) == before
    # Accept the metastasis: a final PET version by the current reader; the room lists it.
    tool.table.selectRow(row)
    with qtbot.waitSignal(tool.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        tool.accept_selected()
    stored = stored_segmentation(store, saved.args[0]["segmentation_id"])
    assert stored.status == "final" and stored.reader_id == store.reader.id
    assert stored.method.startswith("PET whole-body candidate")
    assert stored.voxel_count == candidate.voxel_count
    assert tool.table.item(row, 5).text() == f"accepted as {saved.args[0]['lesion']}"
    qtbot.waitUntil(
        lambda: any(
            saved.args[0]["lesion"] in (room.lesions.item(i, 0).text() or "")
            for i in range(room.lesions.rowCount())
        ),
        timeout=LOAD_TIMEOUT_MS,
    )
    assert tool.result is result  # the review survives the room's reload of the same subject
    assert np.count_nonzero(result.labels == candidate.label) == candidate.voxel_count
    assert subject.code == tool.subject_code
    room.tools.setCurrentWidget(tool)
    tool.table.selectRow(row)
    qtbot.wait(300)
    window.grab().save(f"{os.environ.get('PALMARES_SCREENSHOT_DIR', tmp_path)}/pet_candidates.png")

"""The outline editor's 3D sphere brush/eraser and fill on the real window and a copy of the demo
store, driven by real mouse clicks and keys on the napari canvas: the working mask gains exactly
core's sphere voxels, Ctrl+Z / Ctrl+Shift+Z undo and redo it, the sphere eraser's cavity is filled
back by the 3D fill (and its cut through the slice by the 2D fill), an open region is refused in words, and Save makes a final version of that
many voxels. Runs under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from palmares_desktop.core.segmentation.strokes import sphere_region, voxel_under
from tests.gui.test_ct_pet_room import LOAD_TIMEOUT_MS, open_subject

pytestmark = pytest.mark.gui

DIAMETER_MM = 16.0
CAVITY_MM = 6.0


def _click(room, qtbot, world_zyx) -> tuple[float, float, float]:
    """A real left click on the canvas at a world point of the shown slice; returns where napari
    says the click was (world z, y, x mm)."""
    canvas = room.viewer.widget.canvas.native
    row, col = room.viewer.canvas_pixel(world_zyx, (canvas.height(), canvas.width()))
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(col, row))
    return tuple(float(v) for v in room.viewer.model.cursor.position[-3:])


def _key(room, qtbot, modifiers) -> None:
    canvas = room.viewer.widget.canvas.native
    qtbot.keyClick(canvas, Qt.Key.Key_Z, modifiers)


def _sphere(session, at, diameter) -> np.ndarray:
    """Core's sphere around the voxel under `at`, as a display-order bool mask."""
    box, inside = sphere_region(session.placement, at, diameter)
    out = np.zeros(session.mask.shape, dtype=bool)
    out[box] = inside
    return out


def test_sphere_brush_eraser_and_3d_fill_by_clicks_undo_redo_and_save(copy_window, qtbot):
    from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
    from palmares_desktop.gui.outline_editor import EDIT_LAYER

    window = copy_window
    open_subject(window, qtbot)
    room, editor = window.ct_pet, window.ct_pet.editor
    ct_row = next(i for i, m in enumerate(room.loaded.masks) if m.segmentation.series_modality == "CT")
    room.lesions.selectRow(ct_row)
    editor.edit.click()
    layer, session = room.viewer.layer(EDIT_LAYER), editor.session
    assert layer is not None and session is not None
    editor.sphere.setChecked(True)
    editor.paint.click()
    assert editor.paint.isChecked() and layer.mode == "pan_zoom" and not layer.mouse_pan  # ours
    assert layer.cursor == "circle" and layer.cursor_size == pytest.approx(5.0)  # the default 5 mm
    editor.brush_mm.setValue(DIAMETER_MM)
    assert layer.cursor_size == pytest.approx(DIAMETER_MM)  # the circle shows the sphere in mm

    # A point 35 mm to the patient's left of the lesion's centre, on the slice through it.
    lesion = np.argwhere(session.mask > 0).mean(axis=0).round().astype(int)
    centre = session.placement.display_to_world(lesion)
    target = centre + np.array([0.0, 0.0, 35.0])
    room.viewer.go_to_slice(target)
    target[0] = float(room.viewer.model.dims.point[0])  # the slice napari shows
    room.viewer.widget.canvas.native.setFocus()
    qtbot.wait(200)
    original = session.mask.copy()
    at = _click(room, qtbot, target)
    assert abs(at[1] - target[1]) < 1.0 and abs(at[2] - target[2]) < 1.0  # the click landed there
    sphere = _sphere(session, at, DIAMETER_MM)
    gained = sphere & (original == 0)
    assert gained.sum() > 200
    np.testing.assert_array_equal(session.mask > 0, (original > 0) | sphere)  # exactly core's sphere
    slices = np.flatnonzero(gained.any(axis=(1, 2)))
    assert len(slices) > 1  # through slices: a sphere, not a disc
    assert voxel_under(session.placement, at)[0] in slices
    # The outline's numbers follow the stroke: core's, on the CT the room shows.
    from palmares_desktop.core.segmentation.live import live_numbers

    expected = live_numbers(session.mask, room.loaded.ct_volume.data, session.placement.scale, "CT")
    assert editor.live.text() == expected.sentence() and "HU" in expected.sentence()
    assert expected.voxels == int((session.mask > 0).sum())
    assert session.history.depth == 1 and session.dirty
    assert f"{int(gained.sum())} voxels (" in editor.message.text()  # core's count, and its mL
    painted = session.mask.copy()

    # Ctrl+Z removes the sphere, Ctrl+Shift+Z puts it back (napari's keys, the session's history).
    _key(room, qtbot, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.mask, original)
    _key(room, qtbot, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(session.mask, painted)

    # The sphere eraser hollows the painted sphere; the 3D fill fills the enclosed cavity back.
    editor.erase.click()
    editor.brush_mm.setValue(CAVITY_MM)
    assert _click(room, qtbot, target) == at
    cavity = _sphere(session, at, CAVITY_MM)
    np.testing.assert_array_equal(session.mask > 0, (painted > 0) & ~cavity)
    hollow = session.mask.copy()
    shown = voxel_under(session.placement, at)[0]
    assert len(np.flatnonzero(cavity.any(axis=(1, 2)))) > 1  # the cavity crosses slices
    # 2D fill: the cavity's cut through the shown slice only; Ctrl+Z takes it back.
    editor.sphere.setChecked(False)
    editor.fill.click()
    assert editor.fill.isChecked() and layer.mode == "pan_zoom" and not layer.mouse_pan
    _click(room, qtbot, target)
    assert "on this slice" in editor.message.text()
    np.testing.assert_array_equal(session.mask[shown], painted[shown])
    np.testing.assert_array_equal(np.delete(session.mask, shown, 0), np.delete(hollow, shown, 0))
    _key(room, qtbot, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(session.mask, hollow)
    # 3D fill: the whole enclosed cavity.
    editor.sphere.setChecked(True)
    assert editor.fill.isChecked() and layer.mode == "pan_zoom"
    _click(room, qtbot, target)
    np.testing.assert_array_equal(session.mask, painted)
    assert "in 3D" in editor.message.text() and session.history.depth == 3
    # A click far outside any outline: not enclosed, refused in words, nothing changed.
    _click(room, qtbot, target - np.array([0.0, 0.0, 70.0]))  # 35 mm on the lesion's other side
    assert "not enclosed" in editor.message.text()
    np.testing.assert_array_equal(session.mask, painted)

    # Save: the final version holds the lesion plus the sphere.
    expected = int((painted > 0).sum())
    with qtbot.waitSignal(editor.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        editor.save.click()
    row = stored_segmentation(window.store, saved.args[0]["segmentation_id"])
    assert row.status == "final" and row.voxel_count == expected
    # The version records its tool chain, in first-use order, with the brush size.
    assert row.method == "drawn: sphere brush, sphere eraser, fill 2D, fill 3D", row.method

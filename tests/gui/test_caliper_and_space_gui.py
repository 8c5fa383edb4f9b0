"""The CT/PET room's manual caliper and holding Space to pan while a sphere/fill tool is on, on the
real window and the demo store. Runs under Xvfb."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils._test_utils import read_only_mouse_event
from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks
from qtpy.QtCore import QPoint, Qt

from tests.gui.test_ct_pet_room import open_subject

pytestmark = pytest.mark.gui


def _drag(layer, start, end) -> None:
    """napari's own drag on a layer, from world point `start` to `end` (z, y, x mm)."""
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", position=start, button=1))
    for t in (0.5, 1.0):
        middle = tuple(a + t * (b - a) for a, b in zip(start, end, strict=True))
        mouse_move_callbacks(
            layer, read_only_mouse_event(type="mouse_move", position=middle, button=1, is_dragging=True)
        )
    mouse_release_callbacks(
        layer, read_only_mouse_event(type="mouse_release", position=end, button=1, is_dragging=True)
    )


def test_caliper_lines_read_in_mm_and_pair_as_long_and_short_axis(copy_window, qtbot):
    main_window = copy_window  # opening a second subject computes its features: not in the shared store
    from palmares_desktop.gui.caliper import CALIPER_LAYER

    open_subject(main_window, qtbot)
    room = main_window.ct_pet
    before = room.viewer.model.layers.selection.active
    room.caliper.toggle.click()
    layer = room.viewer.layer(CALIPER_LAYER)
    assert layer is not None and layer.mode == "add_line"
    assert room.viewer.model.layers.selection.active is layer
    z = float(room.viewer.model.dims.point[0])
    centre = np.asarray(room.companions.cursor, dtype=float)
    _drag(layer, (z, centre[1], centre[2] - 20.0), (z, centre[1], centre[2] + 20.0))  # 40 mm, left-right
    assert len(layer.data) == 1
    drawn = float(np.linalg.norm(np.diff(np.asarray(layer.data[0])[:, -3:], axis=0)))
    assert room.caliper.lines_mm() == pytest.approx([drawn]) and drawn == pytest.approx(40.0, abs=0.1)
    assert room.caliper.readout.text() == "Caliper: 40.0 mm." and room.caliper.readout.isVisible()
    assert (
        main_window.minimumSizeHint().height() <= 700
    )  # the readout is on the status line: still fits 768 px
    assert list(layer.features["length"]) == pytest.approx([drawn])  # written on the line
    _drag(layer, (z, centre[1] - 9.0, centre[2] + 1.0), (z, centre[1] + 9.0, centre[2] - 1.0))  # 18.1 mm
    assert "long axis 40.0 mm × short axis 18.1 mm" in room.caliper.readout.text()
    room.caliper.toggle.click()  # off: the mouse goes back to the layer it was with
    assert layer.mode == "pan_zoom" and room.viewer.model.layers.selection.active is before
    room.caliper.clear()
    assert len(layer.data) == 0 and "drag a line" in room.caliper.readout.text()
    open_subject(main_window, qtbot, 1)  # another subject: its layers are new, the lines gone
    assert room.viewer.layer(CALIPER_LAYER) is None and room.caliper.readout.text() == ""
    room.caliper.toggle.click()
    assert room.viewer.layer(CALIPER_LAYER) is not None
    room.caliper.toggle.click()


def test_holding_space_pans_instead_of_painting_the_sphere(copy_window, qtbot):
    from palmares_desktop.gui.outline_editor import EDIT_LAYER

    window = copy_window
    open_subject(window, qtbot)
    room, editor = window.ct_pet, window.ct_pet.editor
    room.lesions.selectRow(
        next(i for i, m in enumerate(room.loaded.masks) if m.segmentation.series_modality == "CT")
    )
    editor.edit.click()
    layer = room.viewer.layer(EDIT_LAYER)
    editor.sphere.setChecked(True)
    editor.paint.click()
    assert layer.mode == "pan_zoom" and not layer.mouse_pan  # the sphere takes the mouse
    canvas = room.viewer.widget.canvas.native
    canvas.setFocus()
    qtbot.wait(200)
    original = editor.session.mask.copy()
    middle = QPoint(canvas.width() // 2 + 60, canvas.height() // 2)

    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    assert layer.mouse_pan and layer.cursor == "standard"  # napari pans while Space is held
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=middle)
    np.testing.assert_array_equal(editor.session.mask, original)  # nothing painted
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert not layer.mouse_pan and layer.cursor == "circle"  # the sphere is back

    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=middle)
    assert (editor.session.mask != original).sum() > 0  # and paints again
    editor.cancel_edit()

"""The CT/PET room's 2x2 layout on the real demo store: linked cursor, status line, colour bar, keys.

Runs under Xvfb (pytest-xvfb); napari draws with Mesa llvmpipe, the companion views are core pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, QPointF, Qt
from qtpy.QtGui import QColor, QWheelEvent
from qtpy.QtWidgets import QApplication

from palmares_desktop.core import planes
from palmares_desktop.core.pet.display import fuse
from palmares_desktop.gui.napari_adapter import CT_LAYER, PET_LAYER
from tests.gui.test_ct_pet_room import open_subject, planted

pytestmark = pytest.mark.gui


def _layer_value(layer, world) -> float:
    return float(layer.data[tuple(int(round(i)) for i in layer.world_to_data(world))])


def _wheel(widget, dy: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        centre,
        widget.mapToGlobal(centre),
        QPoint(0, 0),
        QPoint(0, dy),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_two_by_two_links_the_cursor_and_reads_hu_and_suv_under_it(main_window, qtbot):
    lesion = planted(1, "vertebral metastasis")
    open_subject(main_window, qtbot)
    room = main_window.ct_pet
    room.set_layout("2x2")
    coronal, sagittal, mip = room.companions.views
    qtbot.waitUntil(
        lambda: coronal.isVisible() and coronal.rgb is not None and mip.rgb is not None, timeout=10_000
    )
    assert room.viewer.orientation_letters() == ("A", "P", "R", "L", "Axial")
    assert coronal.grid.kind.labels == ("S", "I", "R", "L") and sagittal.grid.kind.labels == (
        "S",
        "I",
        "A",
        "P",
    )

    # A click on the lesion in the coronal view moves every view there: napari's axial slice, the
    # sagittal plane, the cursor; the status line gives the HU and SUV the layers hold at that point.
    world = np.array([lesion.centre[2], lesion.centre[1], lesion.centre[0]])  # (z, y, x) mm
    room.move_cursor((world[0], world[1], world[2] + 60.0))  # first elsewhere, on the lesion's coronal plane
    qtbot.waitUntil(lambda: abs(room.companions.cursor[2] - world[2] - 60.0) < 1e-6, timeout=5_000)
    point = coronal.widget_point(world)
    qtbot.mouseClick(coronal, Qt.MouseButton.LeftButton, pos=point.toPoint())
    z_step = abs(room.viewer.layer(CT_LAYER).scale[0])
    # within one coronal pixel (the click lands on a screen pixel), on the same coronal plane
    np.testing.assert_allclose(room.companions.cursor, world, atol=coronal.grid.pixel_mm)
    assert room.companions.cursor[1] == pytest.approx(world[1])
    assert abs(float(room.viewer.model.dims.point[0]) - world[0]) <= z_step
    ct, pet = room.viewer.layer(CT_LAYER), room.viewer.layer(PET_LAYER)
    cursor = tuple(room.companions.cursor)
    hu, suv = _layer_value(ct, cursor), _layer_value(pet, cursor)
    assert room.status.text() == planes.readout(cursor, hu, suv), room.status.text()
    assert hu > 250 and suv > 0.7 * lesion.suv_max, (hu, suv)  # blastic bone, hot: the planted lesion
    qtbot.waitUntil(lambda: np.allclose(sagittal.cursor_zyx, cursor), timeout=5_000)

    # The coronal view shows the uptake over the bone (colour, not white on white) and the MIP shows
    # the lesion black on white, as nuclear physicians read a MIP.
    room.masks_visible.setChecked(False)
    qtbot.waitUntil(lambda: not room.companions.masks_visible, timeout=5_000)
    room._render_companions()
    row, col = (int(round(v)) for v in coronal.grid.pixel_of(cursor))
    fused = coronal.rgb[row, col].astype(int)
    room.pet_visible.setChecked(False)
    room._render_companions()
    ct_only = coronal.rgb[row, col].astype(int)
    room.pet_visible.setChecked(True)
    assert ct_only.min() > 240 and np.abs(fused - ct_only).max() > 100, (ct_only, fused)
    mip_row, mip_col = (int(round(v)) for v in mip.grid.pixel_of(cursor))
    assert mip.rgb[mip_row, mip_col].max() < 40, mip.rgb[mip_row, mip_col]

    # The colour bar follows the PET range; it ends at the display maximum in SUV.
    assert room.colour_bar.isVisible() and room.colour_bar.unit.startswith("SUV")
    room.suv_max.setValue(10.0)
    assert room.colour_bar.ticks()[-1] == 10.0 and room.colour_bar.top == 10.0


def test_keys_and_wheel_move_slices_switch_windows_and_layout(main_window, qtbot):
    open_subject(main_window, qtbot)
    room = main_window.ct_pet
    canvas = room.viewer.widget.canvas.native
    room.set_layout("single")
    qtbot.waitUntil(lambda: not room.companions.coronal.isVisible(), timeout=5_000)
    step = room.viewer.model.dims.current_step[0]

    # The wheel moves through slices; Ctrl+wheel zooms and leaves the slice alone.
    _wheel(canvas, 120)
    assert room.viewer.model.dims.current_step[0] == step + 1
    zoom = float(room.viewer.model.scene.camera.zoom)
    _wheel(canvas, 120, Qt.KeyboardModifier.ControlModifier)
    assert room.viewer.model.dims.current_step[0] == step + 1
    assert float(room.viewer.model.scene.camera.zoom) == pytest.approx(zoom * 1.15)

    # Keys, with the viewer focused: Up/PgDown through slices, number keys for window presets,
    # L for the next layout: 2x2, side by side, one view.
    main_window.activateWindow()
    canvas.setFocus()
    qtbot.waitUntil(lambda: canvas.hasFocus(), timeout=5_000)
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    assert room.viewer.model.dims.current_step[0] == step + 2
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert room.viewer.model.dims.current_step[0] == step - 8
    qtbot.keyClick(canvas, Qt.Key.Key_4)
    assert room.window_combo.currentData() == "lung"
    assert room.viewer.layer(CT_LAYER).contrast_limits == [-1350.0, 150.0]
    qtbot.keyClick(canvas, Qt.Key.Key_L)
    qtbot.waitUntil(lambda: room.companions.coronal.isVisible(), timeout=5_000)
    assert room.layout_combo.currentData() == "2x2"
    qtbot.keyClick(canvas, Qt.Key.Key_L)
    assert room.layout_combo.currentData() == "side"
    qtbot.keyClick(canvas, Qt.Key.Key_L)
    assert room.layout_combo.currentData() == "single"


def test_the_companion_planes_follow_the_outline_being_edited(copy_window, qtbot):
    window = copy_window
    open_subject(window, qtbot)
    room, editor = window.ct_pet, window.ct_pet.editor
    room.set_layout("2x2")
    ct_row = next(i for i, m in enumerate(room.loaded.masks) if m.segmentation.series_modality == "CT")
    room.lesions.selectRow(ct_row)
    editor.edit.click()
    assert editor.session is not None
    # A 12 mm sphere 40 mm to the patient's left of the lesion, on its coronal plane: drawn live in
    # the coronal view in the lesion's colour, where nothing was outlined before.
    cursor = room.companions.cursor.copy()
    target = (cursor[0], cursor[1], cursor[2] + 40.0)
    coronal = room.companions.coronal
    qtbot.waitUntil(lambda: coronal.rgb is not None, timeout=10_000)
    row, col = (int(round(v)) for v in coronal.grid.pixel_of(target))
    edge_col = col + int(round(6.0 / coronal.grid.pixel_mm))  # the sphere's right edge in that plane
    colour = (np.asarray(QColor(room.selected_mask().color).getRgbF()[:3]) * 255).round()
    assert not np.array_equal(coronal.rgb[row, edge_col], colour)
    editor.sphere.setChecked(True)
    editor.brush_mm.setValue(12.0)
    assert editor.sphere_at(target) > 0
    qtbot.waitUntil(
        lambda: any(np.array_equal(coronal.rgb[row, c], colour) for c in range(edge_col - 2, edge_col + 3)),
        timeout=10_000,
    )
    editor.cancel_edit()  # the planes go back to the saved outlines
    qtbot.waitUntil(
        lambda: (
            not any(np.array_equal(coronal.rgb[row, c], colour) for c in range(edge_col - 2, edge_col + 3))
        ),
        timeout=10_000,
    )


def test_side_by_side_shows_ct_alone_pet_alone_and_follows_the_slice(main_window, qtbot):
    lesion = planted(1, "vertebral metastasis")
    open_subject(main_window, qtbot)
    room = main_window.ct_pet
    room.set_layout("side")
    ct_view, pet_view = room.companions.side_views
    qtbot.waitUntil(
        lambda: ct_view.isVisible() and ct_view.rgb is not None and pet_view.rgb is not None, timeout=10_000
    )
    assert not room.companions.coronal.isVisible()
    assert ct_view.grid.kind.labels == ("A", "P", "R", "L")
    world = (lesion.centre[2], lesion.centre[1], lesion.centre[0])  # (z, y, x) mm
    room.move_cursor(world)
    qtbot.waitUntil(lambda: np.allclose(ct_view.cursor_zyx, world), timeout=5_000)
    room._render_companions()
    row, col = (int(round(v)) for v in ct_view.grid.pixel_of(world))
    ct_rgb, pet_rgb = ct_view.rgb[row, col].astype(int), pet_view.rgb[row, col].astype(int)
    assert ct_rgb.min() > 240 and np.ptp(ct_rgb) == 0, ct_rgb  # blastic bone, grey only: no PET in it
    table = np.asarray(room.viewer.layer(PET_LAYER).colormap.colors)
    suv = _layer_value(room.viewer.layer(PET_LAYER), world)
    expected = planes.to_bytes(fuse(np.zeros((1, 1, 3)), np.array([[suv]]), 6.0, table, 1.0))[0, 0]
    assert np.abs(pet_rgb - expected.astype(int)).max() <= 1, (pet_rgb, expected)  # PET alone, full colour
    # The axial views follow napari's slice.
    shown = ct_view.rgb.copy()
    room.viewer.step_slice(5)
    qtbot.waitUntil(
        lambda: abs(room.companions.cursor[0] - float(room.viewer.model.dims.point[0])) < 1e-6, timeout=5_000
    )
    qtbot.waitUntil(lambda: not np.array_equal(ct_view.rgb, shown), timeout=5_000)
    # PET alone in napari's view too: Show CT off hides the CT layer.
    room.ct_visible.setChecked(False)
    assert not room.viewer.layer(CT_LAYER).visible

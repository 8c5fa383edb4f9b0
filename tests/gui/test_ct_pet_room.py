"""The CT/PET reading room on the real demo store: fusion over bone, lesions panel, tools.

Runs under Xvfb (pytest-xvfb); napari draws with Mesa llvmpipe.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from palmares_desktop.core.demo.demo_store import PET_GRID
from palmares_desktop.core.demo.phantom import make_subject
from palmares_desktop.core.model import Subject
from palmares_desktop.core.pet.display import DEFAULT_SUV_MAX, fused_pixel
from palmares_desktop.gui.napari_adapter import CT_LAYER, PET_LAYER

pytestmark = pytest.mark.gui

LOAD_TIMEOUT_MS = 60_000


def open_subject(window, qtbot, index: int = 0) -> Subject:
    rows = [r for r in window.store.worklist() if {"CT", "PT"} <= set(r["modalities"])]
    code = rows[index]["code"]
    with qtbot.waitSignal(window.ct_pet.subject_loaded, timeout=LOAD_TIMEOUT_MS):
        window.worklist.table.doubleClicked.emit(
            window.worklist.proxy.index(window.worklist.visible_codes().index(code), 0)
        )
    return window.store.subject_by_code(code)


def planted(index: int, name: str):
    """The demo phantom's planted lesion (subject `index`, 1-based): centre (x, y, z) LPS mm, SUVmax."""
    return next(x for x in make_subject(index, PET_GRID).lesions if x.name == name)


def _patch(image: np.ndarray, row: int, col: int, half: int = 1) -> np.ndarray:
    return image[row - half : row + half + 1, col - half : col + half + 1, :3].astype(float).mean(axis=(0, 1))


def test_fused_pet_shows_the_blastic_vertebral_metastasis_over_white_bone(main_window, qtbot):
    lesion = planted(1, "vertebral metastasis")
    assert lesion.character == "blastic" and lesion.suv_max == pytest.approx(9.22)
    open_subject(main_window, qtbot)
    room = main_window.ct_pet
    room.masks_visible.setChecked(False)  # outlines would differ between the two shots
    room.set_window("abdomen")
    world = (lesion.centre[2], lesion.centre[1], lesion.centre[0])  # (z, y, x) mm
    room.viewer.go_to_slice(world)
    pet = room.viewer.layer(PET_LAYER)
    assert pet.blending == "translucent_no_depth"
    qtbot.wait(200)
    fused = room.viewer.screenshot()
    room.pet_visible.setChecked(False)
    qtbot.wait(200)
    ct_only = room.viewer.screenshot()
    room.pet_visible.setChecked(True)
    row, col = room.viewer.canvas_pixel(world, fused.shape)
    ct_rgb, fused_rgb = _patch(ct_only, row, col), _patch(fused, row, col)
    # The CT there is bone at HU 480, above the abdomen window's top (250 HU): white.
    assert ct_rgb.min() > 240, ct_rgb
    # Fused: an orange-yellow over the white (core: blue 108 at SUV >= 6, opacity 0.6), not white on white.
    assert np.abs(fused_rgb - ct_rgb).max() > 100, (ct_rgb, fused_rgb)
    assert fused_rgb[2] < 150 and fused_rgb[0] > 200, fused_rgb
    # Away from the hot spot (soft tissue 40 mm anterior) the screen shows the tint core's fusion
    # predicts for the SUV there: what the reader sees is what core/pet/display.py computes.
    soft = (world[0], world[1] - 40.0, world[2])
    soft_row, soft_col = room.viewer.canvas_pixel(soft, fused.shape)
    suv = float(pet.data[tuple(int(round(i)) for i in pet.world_to_data(soft))])
    assert 0.5 < suv < DEFAULT_SUV_MAX, suv  # background uptake, inside the colour scale
    table = np.asarray(pet.colormap.colors)  # core's fusion_table, as the layer holds it
    soft_ct = _patch(ct_only, soft_row, soft_col)
    expected = 255 * fused_pixel(soft_ct / 255, suv, float(pet.contrast_limits[1]), table, pet.opacity)
    assert np.abs(_patch(fused, soft_row, soft_col) - expected).max() < 25, (suv, expected)
    assert room.viewer.layer(CT_LAYER).visible


def test_clicking_a_lesion_with_the_pet_threshold_tool_saves_it_with_its_numbers(copy_window, qtbot):
    from palmares_desktop.core.pet.subject_pet import load_pet
    from palmares_desktop.core.pet.threshold import Region, threshold_in_region
    from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation

    window, store = copy_window, copy_window.store
    subject = open_subject(window, qtbot)
    room, lesion = window.ct_pet, planted(1, "vertebral metastasis")
    tool = room.threshold
    tool.rule.setCurrentIndex(tool.rule.findData("41%"))
    tool.lesion.setText("T12 metastasis")
    tool.arm.setChecked(True)
    world = (lesion.centre[2], lesion.centre[1], lesion.centre[0])  # (z, y, x) mm, as napari gives
    with qtbot.waitSignal(tool.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        tool.on_press(room.viewer.model, SimpleNamespace(position=world, button=1))  # a left click there
    result = saved.args[0]
    assert not tool.arm.isChecked()  # one click, one lesion
    # The numbers are core's: the same threshold computed directly on the stored PET.
    _, _, pet, _ = load_pet(store, subject.code)
    direct = threshold_in_region(pet, Region(tuple(lesion.centre), 60.0, "box"), "41%")
    assert result["suv_max"] == pytest.approx(lesion.suv_max, rel=0.02)
    assert result["mtv_ml"] == pytest.approx(direct.metrics.mtv_ml)
    assert result["parameters"]["threshold_suv"] == pytest.approx(0.41 * result["suv_max"])
    assert "SUVmax" in tool.message.text() and "T12 metastasis" in tool.message.text()
    row = stored_segmentation(store, result["segmentation_id"])
    assert row.status == "final" and row.reader_id == store.reader.id
    # The room reloads and selects the new lesion, whose row is in the lesions table.
    qtbot.waitUntil(
        lambda: (
            room.selected_mask() is not None
            and room.selected_mask().segmentation.id == result["segmentation_id"]
        ),
        timeout=LOAD_TIMEOUT_MS,
    )
    names = [room.lesions.item(i, 0).text() for i in range(room.lesions.rowCount())]
    assert any("T12 metastasis" in n for n in names), names
    tool.arm.setChecked(False)
    tool.on_press(room.viewer.model, SimpleNamespace(position=world, button=1))  # not armed: nothing
    assert tool.message.text().startswith(f"{subject.code} lesion")
    # PERCIST: refused in words until the reader places the liver reference, then core's threshold.
    tool.rule.setCurrentIndex(tool.rule.findData("percist"))
    tool.arm.setChecked(True)
    tool.on_press(room.viewer.model, SimpleNamespace(position=world, button=1))
    assert "needs the liver reference" in tool.message.text()
    from palmares_desktop.core.demo.demo_store import PET_GRID
    from palmares_desktop.core.pet.threshold import liver_reference

    liver = make_subject(1, PET_GRID).liver_reference  # (x, y, z) LPS mm
    tool.liver.setChecked(True)
    tool.on_press(room.viewer.model, SimpleNamespace(position=tuple(reversed(liver)), button=1))
    assert tool.liver_at == pytest.approx(liver) and "Liver reference" in tool.message.text()
    tool.arm.setChecked(True)
    with qtbot.waitSignal(tool.saved, timeout=LOAD_TIMEOUT_MS) as percist:
        tool.on_press(room.viewer.model, SimpleNamespace(position=world, button=1))
    expected = liver_reference(pet, liver).percist_threshold_suv()
    assert percist.args[0]["parameters"]["threshold_suv"] == pytest.approx(expected)
    assert "Reference liver" in tool.message.text()


def test_brushing_a_lesion_autosaves_a_draft_and_save_makes_the_next_version(copy_window, qtbot):
    from palmares_desktop.core.store import segmentations as chains
    from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
    from palmares_desktop.gui.outline_editor import EDIT_LAYER

    window, store = copy_window, copy_window.store
    open_subject(window, qtbot)
    room, editor = window.ct_pet, window.ct_pet.editor
    ct_row = next(i for i, m in enumerate(room.loaded.masks) if m.segmentation.series_modality == "CT")
    room.lesions.selectRow(ct_row)
    before = room.selected_mask().segmentation
    editor.edit.click()
    layer = room.viewer.layer(EDIT_LAYER)
    assert layer is not None and layer.mode == "paint" and editor.session is not None
    assert not room.viewer.layer(room._mask_layer_name(before)).visible  # only the working outline
    spacing = min(editor._target["spacing"], 10.0)
    editor.brush_mm.setValue(3 * spacing)
    assert layer.brush_size == pytest.approx(3.0)  # mm -> voxels of the CT
    # A dab away from the lesion: voxels that were 0 become the lesion's.
    empty = np.argwhere(editor.session.mask == 0)[0]
    layer.paint(tuple(int(v) for v in empty), 1, refresh=False)
    painted = int(editor.session.mask.sum())
    assert painted > before.voxel_count and editor.session.dirty
    editor.session.autosave.idle_s = 0.0  # due at once: the timer's next poll saves the draft
    lesion_id, series_id = before.lesion_id, before.series_id
    qtbot.waitUntil(
        lambda: chains.draft(store, lesion_id, series_id, store.reader.id) is not None, timeout=30_000
    )
    draft = chains.draft(store, lesion_id, series_id, store.reader.id)
    assert draft.status == "draft" and draft.voxel_count == painted
    with qtbot.waitSignal(editor.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        editor.save.click()
    row = stored_segmentation(store, saved.args[0]["segmentation_id"])
    assert row.status == "final" and row.voxel_count == painted and row.method == "brush"
    assert row.reader_id == store.reader.id  # the editing reader's own chain, not the demo's
    assert chains.draft(store, lesion_id, series_id, store.reader.id) is None  # the draft became it
    qtbot.waitUntil(
        lambda: room.selected_mask() is not None and room.selected_mask().segmentation.id == row.id,
        timeout=LOAD_TIMEOUT_MS,
    )
    assert room.viewer.layer(EDIT_LAYER) is None and editor.session is None
    # Edits not yet autosaved survive leaving the subject: they become the reader's draft.
    editor.edit.click()
    empty = np.argwhere(editor.session.mask == 0)[-1]
    room.viewer.layer(EDIT_LAYER).paint(tuple(int(v) for v in empty), 1, refresh=False)
    expected = int(editor.session.mask.sum())
    open_subject(window, qtbot, index=1)
    kept = chains.draft(store, lesion_id, series_id, store.reader.id)
    assert kept is not None and kept.voxel_count == expected

"""The CT tools tab of the real CT/PET room on a copy of the demo store: a click with the HU range
tool recovers the planted liver metastasis (38 HU in a 60 HU liver), region growing too, and the
clean-up grows the selected outline by 2 mm exactly as core's mm-ball dilation does; the logical
clean-ups combine the selected outline with another lesion's, voxel for voxel as numpy does on the two
stored masks, and core's refusal of an empty result is shown in words."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from palmares_desktop.core.demo.demo_store import CT_GRID
from palmares_desktop.core.demo.phantom import make_subject
from palmares_desktop.core.model import Segmentation
from palmares_desktop.core.segmentation.cleanup import grow_mm
from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
from tests.gui.test_ct_pet_room import LOAD_TIMEOUT_MS, open_subject

pytestmark = pytest.mark.gui


def _mask(store, segmentation_id: str) -> np.ndarray:
    row = stored_segmentation(store, segmentation_id)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(row.mask_path)))) > 0


def _wait_selected(room, qtbot, segmentation_id: str) -> None:
    qtbot.waitUntil(
        lambda: room.selected_mask() is not None and room.selected_mask().segmentation.id == segmentation_id,
        timeout=LOAD_TIMEOUT_MS,
    )


def test_hu_range_region_grow_and_clean_up_from_the_room(copy_window, qtbot):
    window, store = copy_window, copy_window.store
    open_subject(window, qtbot)
    room, tools = window.ct_pet, window.ct_pet.ct_tools
    lesion = next(x for x in make_subject(1, CT_GRID).lesions if x.name == "liver metastasis")
    world = tuple(reversed(lesion.centre))  # (z, y, x) mm, as napari gives a click
    room.tools.setCurrentWidget(tools)
    # HU range: halfway between lesion (38 HU) and liver (60 HU), after 1 mm smoothing.
    tools.mode.setCurrentIndex(tools.mode.findData("range"))
    tools.low.setValue(-100)
    tools.high.setValue(49)
    tools.smooth_mm.setValue(1.0)
    tools.lesion.setText("liver S7 (CT range)")
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        tools.run_at(world)
    report = saved.args[0]
    assert report["method"] == "CT threshold: -100 to 49 HU, smoothed 1 mm"
    assert report["volume_ml"] == pytest.approx(lesion.volume_ml, rel=0.1)
    assert report["hu_mean"] == pytest.approx(lesion.hu, abs=6)  # of the original CT
    row = stored_segmentation(store, report["segmentation_id"])
    assert row.status == "final" and row.reader_id == store.reader.id
    assert "liver S7 (CT range)" in tools.message.text() and "HU mean" in tools.message.text()
    # Region grow from the same click.
    tools.mode.setCurrentIndex(tools.mode.findData("grow"))
    tools.tolerance.setValue(11)
    tools.size_mm.setValue(30)
    tools.lesion.setText("liver S7 (CT grow)")
    _wait_selected(room, qtbot, report["segmentation_id"])  # the room reloaded with the new outline
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as grown:
        tools.run_at(world)
    assert grown.args[0]["volume_ml"] == pytest.approx(lesion.volume_ml, rel=0.1)
    # Clean-up of the selected outline: grow by 2 mm, the next version, as core's dilation in mm.
    qtbot.waitUntil(
        lambda: (
            room.selected_mask() is not None
            and room.selected_mask().segmentation.id == grown.args[0]["segmentation_id"]
        ),
        timeout=LOAD_TIMEOUT_MS,
    )
    before = _mask(store, grown.args[0]["segmentation_id"])
    tools.cleanup.setCurrentIndex(tools.cleanup.findData("grow"))
    tools.cleanup_mm.setValue(2.0)
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as cleaned:
        tools.apply_cleanup.click()
    after = cleaned.args[0]
    assert after["lesion"] == "liver S7 (CT grow)" and after["version"] == grown.args[0]["version"] + 1
    spacing_zyx = tuple(reversed(CT_GRID.spacing))
    assert np.array_equal(_mask(store, after["segmentation_id"]), grow_mm(before, 2.0, spacing_zyx))
    # A click outside the scan is refused in words; nothing is stored.
    _wait_selected(room, qtbot, after["segmentation_id"])
    count = len(store.rows("segmentations"))
    tools.mode.setCurrentIndex(tools.mode.findData("range"))
    tools.run_at((5000.0, 5000.0, 5000.0))
    qtbot.waitUntil(lambda: "outside" in tools.message.text(), timeout=LOAD_TIMEOUT_MS)
    assert len(store.rows("segmentations")) == count


def _select(room, qtbot, lesion: str, modality: str) -> Segmentation:
    """Select the room's segmentation of `lesion` on `modality` (CT / PT); its version."""
    masks = room.loaded.masks
    row = next(
        i
        for i, m in enumerate(masks)
        if m.segmentation.lesion_name == lesion and m.segmentation.series_modality == modality
    )
    room.lesions.selectRow(row)
    _wait_selected(room, qtbot, masks[row].segmentation.id)
    return masks[row].segmentation


def _parameters(seg: Segmentation) -> dict:
    return seg.parameters.as_dict()


def test_union_subtract_and_an_empty_intersection_of_two_lesions(copy_window, qtbot):
    window, store = copy_window, copy_window.store
    open_subject(window, qtbot)
    room, tools = window.ct_pet, window.ct_pet.ct_tools
    room.tools.setCurrentWidget(tools)
    liver = _select(room, qtbot, "liver metastasis", "CT")
    vertebra = next(
        m.segmentation
        for m in room.loaded.masks
        if m.segmentation.lesion_name == "vertebral metastasis" and m.segmentation.series_modality == "CT"
    )
    target, other = _mask(store, liver.id), _mask(store, vertebra.id)
    # The other lesions with an outline on the same CT series; not the selected one.
    tools.cleanup.setCurrentIndex(tools.cleanup.findData("union"))
    assert not tools.other.isHidden() and tools.cleanup_mm.isHidden()
    names = [tools.other.itemText(i) for i in range(tools.other.count())]
    assert "liver metastasis" not in names and "vertebral metastasis" in names and len(names) == 3
    # Union with the vertebral metastasis: the next version of the liver lesion, by the reader.
    tools.other.setCurrentText("vertebral metastasis")
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as united:
        tools.apply_cleanup.click()
    union = united.args[0]
    row = stored_segmentation(store, union["segmentation_id"])
    assert row.lesion_id == liver.lesion_id and row.series_id == liver.series_id
    assert row.reader_id == store.reader.id and row.status == "final"
    assert row.voxel_count == int(np.logical_or(target, other).sum())
    assert np.array_equal(_mask(store, row.id), target | other)
    assert row.method == "clean-up: union with 'vertebral metastasis'"
    parameters = _parameters(row)
    assert parameters["operation"] == "union" and parameters["other_lesion"] == "vertebral metastasis"
    assert parameters["other_segmentation_id"] == vertebra.id
    text = tools.message.text()
    assert f"{int(target.sum())} → {row.voxel_count} voxels" in text and "mL" in text
    # Subtract it again from the new version (the room reloads and selects it first).
    _wait_selected(room, qtbot, row.id)
    tools.cleanup.setCurrentIndex(tools.cleanup.findData("subtract"))
    tools.other.setCurrentText("vertebral metastasis")
    united_mask = _mask(store, row.id)
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as subtracted:
        tools.apply_cleanup.click()
    minus = stored_segmentation(store, subtracted.args[0]["segmentation_id"])
    assert minus.version == row.version + 1
    assert minus.voxel_count == int(np.logical_and(united_mask, ~other).sum()) == int(target.sum())
    assert minus.method == "clean-up: subtract 'vertebral metastasis'"
    assert _parameters(minus)["from_segmentation_id"] == row.id
    # Intersect with a lesion it does not touch: core refuses the empty result; nothing is stored.
    _wait_selected(room, qtbot, minus.id)
    count = len(store.rows("segmentations"))
    tools.cleanup.setCurrentIndex(tools.cleanup.findData("intersect"))
    tools.other.setCurrentText("breast primary")
    tools.apply_cleanup.click()
    qtbot.waitUntil(lambda: "nothing was saved" in tools.message.text(), timeout=LOAD_TIMEOUT_MS)
    assert "no voxel" in tools.message.text() and "Traceback" not in tools.message.text()
    assert len(store.rows("segmentations")) == count

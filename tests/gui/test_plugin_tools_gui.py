"""The Plugins tab of the real CT/PET room on a copy of the demo store, with the real tiny plugin of
tests/plugin_fixture.py installed into a temporary site folder: without the site's allowance the tab
says how to allow it; allowed, it lists "Above a level" with a form generated from the typed
parameters, and Run saves the CT voxels numpy keeps on the stored CT as the reader's final version,
with the plugin's method, values and version; an armed click hands the seed over; an empty result is
refused in words."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from plugin_fixture import PLUGINS, install_plugins
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox

from palmares_desktop.core.demo.demo_store import CT_GRID
from palmares_desktop.core.demo.phantom import make_subject
from palmares_desktop.core.plugins.manager import allow_plugin
from palmares_desktop.core.segmentation.labelmaps import find_series
from palmares_desktop.core.store.segmentations import segmentation as stored_segmentation
from tests.gui.test_ct_pet_room import LOAD_TIMEOUT_MS, open_subject

pytestmark = pytest.mark.gui


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = install_plugins(tmp_path / "site", ("tiny",))
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop(PLUGINS["tiny"][2], None)


def _stored_ct(store, subject) -> np.ndarray:
    series = find_series(store, subject.id, "CT")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(series.pixel_path))))


def _wait_selected(room, qtbot, segmentation_id: str) -> None:
    qtbot.waitUntil(
        lambda: room.selected_mask() is not None and room.selected_mask().segmentation.id == segmentation_id,
        timeout=LOAD_TIMEOUT_MS,
    )


def test_a_plugin_tool_from_the_plugins_tab(site, copy_window, qtbot):
    window, store = copy_window, copy_window.store
    room, tools = window.ct_pet, window.ct_pet.plugin_tools
    subject = open_subject(window, qtbot)
    assert tools.tool.count() == 0 and "palmares plugins allow NAME" in tools.message.text()
    assert not tools.run_button.isEnabled()

    allow_plugin(store, "tiny")
    open_subject(window, qtbot)  # opening a subject loads the allowed plugins
    room.tools.setCurrentWidget(tools)
    assert room.tools.tabText(room.tools.currentIndex()) == "Plugins"
    assert [tools.tool.itemText(i) for i in range(tools.tool.count())] == ["Above a level"]
    assert tools.image.currentData() == "CT" and tools.image.count() == 1
    (level, level_w), (largest, largest_w), (shape, shape_w) = tools.fields
    assert [level.label, largest.label, shape.label] == ["Level", "Largest part only", "Shape"]
    assert isinstance(level_w, QDoubleSpinBox) and level_w.value() == 100.0 and level_w.suffix() == " HU"
    assert level_w.minimum() == -1024 and level_w.toolTip() == "keep voxels at or above"
    assert isinstance(largest_w, QCheckBox) and not largest_w.isChecked()
    assert isinstance(shape_w, QComboBox) and shape_w.currentText() == "any"
    assert [shape_w.itemText(i) for i in range(shape_w.count())] == ["any", "round"]
    assert window.minimumSizeHint().height() <= 700  # with the form shown, it fits a 768-pixel screen
    shots = os.environ.get("PALMARES_SHOTS")
    if shots:
        qtbot.waitUntil(lambda: tools.scroll.height() >= tools.parameters.sizeHint().height())  # laid out
        window.grab().save(f"{shots}/plugins_tab.png")

    # Level 400 HU, Run: exactly the voxels numpy keeps on the stored CT.
    level_w.setValue(400)
    tools.lesion.setText("bone (plugin)")
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as saved:
        tools.run_button.click()
    report = saved.args[0]
    expected = int((_stored_ct(store, subject) >= 400).sum())
    assert report["voxel_count"] == expected > 0
    row = stored_segmentation(store, report["segmentation_id"])
    assert row.status == "final" and row.reader_id == store.reader.id
    assert row.method == "plugin:tiny/above" and row.voxel_count == expected
    parameters = row.parameters.as_dict()
    assert parameters["values"] == {"level": 400.0, "keep_largest": False, "shape": "any"}
    assert parameters["provenance"]["plugin"] == "tiny"
    assert parameters["provenance"]["plugin_version"] == "0.3.1"
    assert tools.message.text().startswith(f"{subject.code} lesion 'bone (plugin)': CT segmentation")
    _wait_selected(room, qtbot, report["segmentation_id"])  # the room reloaded with the new outline

    # An armed click hands the clicked point to the plugin as the seed.
    lesion = next(x for x in make_subject(1, CT_GRID).lesions if x.name == "liver metastasis")
    level_w.setValue(300)
    shape_w.setCurrentText("round")
    tools.lesion.setText("seeded (plugin)")
    tools.arm.setChecked(True)
    with qtbot.waitSignal(tools.saved, timeout=LOAD_TIMEOUT_MS) as seeded:
        tools.on_press(None, SimpleNamespace(button=1, position=tuple(reversed(lesion.centre))))
    assert not tools.arm.isChecked()
    p = seeded.args[0]["parameters"]
    assert p["seed_mm"] == pytest.approx(list(lesion.centre), abs=2.5)
    assert p["values"]["shape"] == "round" and p["values"]["level"] == 300.0
    _wait_selected(room, qtbot, seeded.args[0]["segmentation_id"])

    # Nothing above 5000 HU: refused in words, nothing saved.
    before = len(store.rows("segmentations"))
    level_w.setValue(5000)
    tools.run_button.click()
    qtbot.waitUntil(lambda: "nothing was saved" in tools.message.text(), timeout=LOAD_TIMEOUT_MS)
    assert "kept no voxel of the CT" in tools.message.text()
    assert len(store.rows("segmentations")) == before

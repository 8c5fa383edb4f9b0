"""The slide room's annotation tools on the real window and a copy of the demo store: a polygon of
known area is stored in level-0 pixels with its µm² area, exported as QuPath GeoJSON, re-imported
equal; undo/redo go through the store; the brush uses µm; the legend shows class areas."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import shapely

from palmares_desktop.core.slides.annotations import export_slide, import_geojson
from palmares_desktop.core.slides.measure import shape_features
from palmares_desktop.core.slides.reader import open_slide
from palmares_desktop.core.slides.registry import slide_path
from palmares_desktop.core.store.slide_objects import annotations_of

LOAD_TIMEOUT_MS = 60_000


@pytest.fixture
def slide_window(open_window, demo_store_dir, tmp_path):
    from palmares_desktop.core.profile import ReaderProfile

    root = tmp_path / "store"
    shutil.copytree(demo_store_dir, root)  # annotations drawn here must not reach other tests' store
    return open_window(root, ReaderProfile("Test Pathologist", "pathologist", "IT03"), (1600, 1000))


def _open_slide(window, qtbot) -> dict:
    rows = window.store.worklist()
    code = next(r["code"] for r in rows if "HE" in r["modalities"])
    index = window.worklist.proxy.index(window.worklist.visible_codes().index(code), 0)
    window.worklist.table.doubleClicked.emit(index)
    window.tabs.setCurrentIndex(2)  # the slide room draws its slide once shown
    try:
        qtbot.waitUntil(lambda: window.slide.panel.layer is not None, timeout=LOAD_TIMEOUT_MS)
    except Exception as exc:  # say what the room showed instead of a bare timeout
        raise AssertionError(f"{window.slide.title.text()!r} {window.slide.details.text()!r}") from exc
    qtbot.wait(200)
    subject = window.store.subject_by_code(code)
    from palmares_desktop.core.store.records import slides_of_subject

    return slides_of_subject(window.store, subject.id)[0]


def test_draw_a_polygon_of_known_area_export_reimport_undo_redo(slide_window, qtbot):
    slide = _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    assert slide.mpp_x == 0.5
    panel.class_box.setCurrentText("Invasive tumour")
    panel.tool_group.button(2).click()  # Polygon
    assert panel.layer.mode == "add_polygon"
    # What napari hands over when the pathologist finishes a polygon: its vertices as (row, column).
    x0, y0, w, h = 4000, 3000, 1000, 2000  # level-0 pixels: 500 x 1000 µm
    panel.layer.add(
        np.array([[y0, x0], [y0, x0 + w], [y0 + h, x0 + w], [y0 + h, x0]], float), shape_type="polygon"
    )
    (stored,) = annotations_of(slide_window.store, slide.id)
    assert stored["classification"] == "Invasive tumour" and stored["color"] == (200, 0, 0)
    assert stored["geometry"].equals(shapely.box(x0, y0, x0 + w, y0 + h))  # level-0 pixels
    info = open_slide(slide_path(slide_window.store, slide))
    assert shape_features(stored["geometry"], info)["area_um2"] == pytest.approx(500_000.0)
    assert "Invasive tumour" in panel.legend.text() and "0.500 mm²" in panel.legend.text()
    assert len(panel.layer.data) == 1

    # QuPath GeoJSON export, re-imported: the same outline, class and colour.
    exported = export_slide(slide_window.store, slide)
    (feature,) = exported["features"]
    assert feature["properties"]["classification"] == {"name": "Invasive tumour", "color": [200, 0, 0]}
    (back,), refused = import_geojson(exported, slide.width, slide.height)
    assert refused == [] and back.geometry.equals_exact(stored["geometry"], 0)
    assert (back.classification, back.color) == ("Invasive tumour", (200, 0, 0))

    # Undo removes it from the store and the canvas; redo brings it back.
    panel.undo_button.click()
    assert annotations_of(slide_window.store, slide.id) == [] and len(panel.layer.data) == 0
    panel.redo_button.click()
    (again,) = annotations_of(slide_window.store, slide.id)
    assert again["geometry"].equals(stored["geometry"]) and len(panel.layer.data) == 1

    # The brush is in µm: a 100 µm brush along 1000 px (500 µm) covers about 500 x 100 µm.
    panel.class_box.setCurrentText("Lymphocytic infiltrate")
    panel.brush_um.setValue(100)
    panel.tool_group.button(6).click()  # Brush
    panel.layer.add(np.array([[1000, 1000], [1000, 2000]], float), shape_type="path")
    stroke = next(
        o
        for o in annotations_of(slide_window.store, slide.id)
        if o["classification"] == "Lymphocytic infiltrate"
    )
    area_um2 = shape_features(stroke["geometry"], info)["area_um2"]
    assert area_um2 == pytest.approx(500 * 100 + np.pi * 50**2, rel=0.02)
    # Select the polygon and delete it; the legend follows.
    panel.tool_group.button(1).click()
    panel.layer.selected_data = {panel._index_ids.index(again["id"])}
    panel.delete_button.click()
    assert [o["classification"] for o in annotations_of(slide_window.store, slide.id)] == [
        "Lymphocytic infiltrate"
    ]
    assert "0.500 mm²" not in panel.legend.text()
    canvas = slide_window.slide.viewer.screenshot()[..., :3].astype(float)
    assert canvas.std() > 5


def test_tils_panel_reports_the_aid_and_stores_the_pathologists_score(slide_window, qtbot):
    from palmares_desktop.core.store.slide_objects import measurements_of

    slide = _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    assert "Draw the tumour stroma" in panel.tils_text.text()
    panel.tool_group.button(3).click()  # Rectangle
    for cls, (x0, y0, x1, y1) in (
        ("Tumour stroma", (1000, 1000, 3000, 2000)),
        ("Lymphocytic infiltrate", (1000, 1000, 1500, 2000)),
    ):
        panel.class_box.setCurrentText(cls)
        panel.layer.add(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float), shape_type="rectangle")
    assert "covers <b>25.0%</b> (shown as <b>25%</b>)" in panel.tils_text.text()
    panel.tils_score.setValue(30)
    panel.tils_store.click()
    (saved,) = measurements_of(slide_window.store, slide.id, kind="tils")
    assert saved["values"]["stromal_tils_percent"] == 30.0
    assert saved["values"]["aid"]["annotation_percent"] == pytest.approx(25.0)
    assert "Stored your stromal TILs score: 30%" in panel.note.text()

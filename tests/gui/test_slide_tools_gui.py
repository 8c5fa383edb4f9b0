"""The slide room's QuPath-style tools on the real window and a copy of the demo store: a wand click
grows one annotation of the chosen class at the zoom on screen; points are drawn on a Points layer,
counted in the legend, removed and undone, and exported as GeoJSON points; a line splits a drawn
rectangle exactly; the legend hides and shows a class; a vertex dragged in napari's direct mode
reshapes the stored outline and undo puts it back. Clicks and drags go through napari's own mouse
callback machinery (the viewer's and the layer's), as the canvas sends them."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
import shapely
from napari.utils._test_utils import read_only_mouse_event
from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks
from shapely.ops import polylabel

from palmares_desktop.core.slides.annotations import export_slide
from palmares_desktop.core.slides.reader import open_slide
from palmares_desktop.core.slides.regions import rasterise, read_at
from palmares_desktop.core.slides.registry import slide_path
from palmares_desktop.core.store.records import slides_of_subject
from palmares_desktop.core.store.slide_objects import annotations_of

LOAD_TIMEOUT_MS = 60_000
MPP = 0.5  # the demo slide's µm per level-0 pixel


@pytest.fixture
def slide_window(open_window, demo_store_dir, tmp_path):
    from palmares_desktop.core.profile import ReaderProfile

    root = tmp_path / "store"
    shutil.copytree(demo_store_dir, root)  # what is drawn here must not reach other tests' store
    return open_window(root, ReaderProfile("Test Pathologist", "pathologist", "IT03"), (1600, 1000))


def _open_slide(window, qtbot) -> dict:
    rows = window.store.worklist()
    code = next(r["code"] for r in rows if "HE" in r["modalities"])
    index = window.worklist.proxy.index(window.worklist.visible_codes().index(code), 0)
    window.worklist.table.doubleClicked.emit(index)
    window.tabs.setCurrentIndex(2)  # the slide room draws its slide once shown
    qtbot.waitUntil(lambda: window.slide.panel.layer is not None, timeout=LOAD_TIMEOUT_MS)
    qtbot.wait(200)
    return slides_of_subject(window.store, window.store.subject_by_code(code).id)[0]


def _look_at(window, qtbot, x: float, y: float, screen_px: float) -> None:
    """Centre the camera on level-0 (x, y) at `screen_px` level-0 pixels per screen pixel."""
    camera = window.slide.viewer.model.scene.camera
    camera.center = (y * MPP, x * MPP)
    camera.zoom = 1.0 / (screen_px * MPP)
    qtbot.wait(50)


def _click(target, x: float, y: float, modifiers=(), drag_px: float = 0.0) -> None:
    """A left click at level-0 (x, y) through napari's mouse callbacks of `target` (viewer or layer),
    optionally dragged `drag_px` screen pixels to the right before release."""
    world = (y * MPP, x * MPP)
    pos = np.array([300.0, 300.0])
    press = read_only_mouse_event(
        type="mouse_press", position=world, pos=pos, button=1, modifiers=list(modifiers)
    )
    mouse_press_callbacks(target, press)
    if drag_px:
        move = read_only_mouse_event(
            type="mouse_move", position=world, pos=pos + [drag_px, 0], button=1, is_dragging=True
        )
        mouse_move_callbacks(target, move)
    release = read_only_mouse_event(
        type="mouse_release", position=world, pos=pos + [drag_px, 0], button=1, modifiers=list(modifiers)
    )
    mouse_release_callbacks(target, release)


def _drag(layer, start_xy, end_xy) -> None:
    """Press on level-0 `start_xy`, move to `end_xy`, release: napari's own drag on a layer."""
    start, end = (start_xy[1] * MPP, start_xy[0] * MPP), (end_xy[1] * MPP, end_xy[0] * MPP)
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", position=start, button=1))
    for t in (0.5, 1.0):
        middle = tuple(a + t * (b - a) for a, b in zip(start, end, strict=True))
        mouse_move_callbacks(
            layer, read_only_mouse_event(type="mouse_move", position=middle, button=1, is_dragging=True)
        )
    mouse_release_callbacks(
        layer, read_only_mouse_event(type="mouse_release", position=end, button=1, is_dragging=True)
    )


def _rectangle(panel, x0, y0, x1, y1, cls: str) -> dict:
    panel.class_box.setCurrentText(cls)
    panel.choose_tool("Rectangle")
    panel.layer.add(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float), shape_type="rectangle")
    return next(
        o for o in panel.session.objects.values() if o["geometry"].equals(shapely.box(x0, y0, x1, y1))
    )


WAND_FIELD = (11200.0, 10560.0, 16.0)  # x, y, level-0 px per screen px: a purple invasive-tumour field


def _wand_on_tumour(window, qtbot):
    """The demo slide open on an invasive-tumour field at 16 px per screen px, the wand chosen with
    that class and tolerance 12: (slide row, panel, viewer model, (x, y, screen px))."""
    slide = _open_slide(window, qtbot)
    panel = window.slide.panel
    _look_at(window, qtbot, *WAND_FIELD)
    panel.class_box.setCurrentText("Invasive tumour")
    panel.wand_tolerance.setValue(12)
    panel.choose_tool("Wand")
    return slide, panel, window.slide.viewer.model, WAND_FIELD


def test_wand_click_adds_one_region_of_the_chosen_class_at_the_zoom_on_screen(slide_window, qtbot):
    slide, panel, viewer, (x, y, screen_px) = _wand_on_tumour(slide_window, qtbot)
    assert panel.layer.mode == "pan_zoom"
    _click(viewer, x, y, drag_px=40)  # a drag pans: nothing is added
    assert annotations_of(slide_window.store, slide.id) == []
    _click(viewer, x, y)  # a click grows the region (in the background)
    qtbot.waitUntil(lambda: not panel.wand_busy, timeout=LOAD_TIMEOUT_MS)
    (stored,) = annotations_of(slide_window.store, slide.id)
    g = stored["geometry"]
    assert (stored["classification"], stored["color"]) == ("Invasive tumour", (200, 0, 0))
    assert (
        g.is_valid
        and g.covers(shapely.Point(x, y))
        and shapely.box(0, 0, slide.width, slide.height).covers(g)
    )
    assert shapely.box(*panel.visible_box()).buffer(2 * screen_px).covers(g)  # only what is on screen
    made = stored["measurements"]["wand"]
    assert made["params"]["tolerance"] == 12.0
    assert made["read"]["downsample"] == pytest.approx(screen_px)  # read at the zoom on screen
    # Independently: the region's pixels are the tumour's purple, not the pink stroma around it.
    path = slide_path(slide_window.store, slide)
    region = read_at(path, open_slide(path), g.bounds, downsample=screen_px)
    r, gr, b = region.rgb[rasterise(g, region)].mean(axis=0)
    assert r < 170 and b > gr + 40
    assert "Invasive tumour: 1 shape" in panel.legend.text() and "Wand:" in panel.note.text()
    assert len(panel.layer.data) >= 1
    panel.undo_button.click()
    assert annotations_of(slide_window.store, slide.id) == [] and len(panel.layer.data) == 0
    # Refused in words: a click outside the slide.
    panel.wand_at(slide.width + 100.0, 100.0)
    qtbot.waitUntil(lambda: not panel.wand_busy, timeout=LOAD_TIMEOUT_MS)
    assert "outside the slide" in panel.note.text() and annotations_of(slide_window.store, slide.id) == []


def test_wand_reads_and_grows_in_the_background_and_adds_what_the_core_wand_gives(
    slide_window, qtbot, monkeypatch
):
    """The slide read (the slow part) and the growth run in a worker: the click returns at once, the
    event loop goes on, a second click is refused in words; then the region added is the core wand's
    on that click, with its provenance, and one undo removes it."""
    from qtpy.QtCore import QTimer

    from palmares_desktop.core.slides import wand as core_wand

    slide, panel, viewer, (x, y, screen_px) = _wand_on_tumour(slide_window, qtbot)
    visible = panel.visible_box()
    real_read = core_wand.read_at
    reading, release, readers = threading.Event(), threading.Event(), []

    def held_read(*args, **kwargs):  # the wand's slide read, held until the test lets it go
        readers.append(threading.current_thread())
        reading.set()
        release.wait(120)  # a safety net only: the test releases it
        return real_read(*args, **kwargs)

    monkeypatch.setattr(core_wand, "read_at", held_read)
    try:
        _click(viewer, x, y)  # returns while the worker is still reading
        assert panel.wand_busy and annotations_of(slide_window.store, slide.id) == []
        assert "growing the region" in panel.note.text()
        qtbot.waitUntil(reading.is_set, timeout=LOAD_TIMEOUT_MS)
        assert readers == [readers[0]] and readers[0] is not threading.main_thread()
        ticks = []
        QTimer.singleShot(0, lambda: ticks.append("event loop ran"))  # the GUI thread is free
        qtbot.waitUntil(lambda: bool(ticks), timeout=LOAD_TIMEOUT_MS)
        _click(viewer, x + 400, y)  # a second click while the first is worked out: refused
        assert "still growing" in panel.note.text() and len(readers) == 1
        assert annotations_of(slide_window.store, slide.id) == []
    finally:
        release.set()
    qtbot.waitUntil(lambda: not panel.wand_busy, timeout=LOAD_TIMEOUT_MS)
    monkeypatch.setattr(core_wand, "read_at", real_read)
    (stored,) = annotations_of(slide_window.store, slide.id)
    path = slide_path(slide_window.store, slide)
    expected = core_wand.wand(path, open_slide(path), x, y, screen_px, visible, core_wand.WandParams(12.0))
    assert stored["geometry"].equals_exact(expected.geometry, 0.0)  # the same outline, vertex by vertex
    assert stored["measurements"]["wand"] == json.loads(json.dumps(expected.to_dict()))
    assert stored["classification"] == "Invasive tumour" and "Wand:" in panel.note.text()
    assert len(readers) == 1 and "Invasive tumour: 1 shape" in panel.legend.text()
    panel.undo_button.click()  # one undo, as for any drawn outline
    assert annotations_of(slide_window.store, slide.id) == [] and len(panel.layer.data) == 0
    panel.redo_button.click()
    (again,) = annotations_of(slide_window.store, slide.id)
    assert again["geometry"].equals_exact(expected.geometry, 0.0)


def test_points_are_drawn_as_points_counted_deleted_undone_and_exported(slide_window, qtbot):
    slide = _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    viewer = slide_window.slide.viewer.model
    _look_at(slide_window, qtbot, 6000, 6000, 1.0)
    panel.class_box.setCurrentText("Lymphocytic infiltrate")
    panel.choose_tool("Points")
    cells = [(6000.0 + 40 * n, 6000.0 + 15 * n) for n in range(12)]
    for cx, cy in cells:
        _click(viewer, cx, cy)
    stored = annotations_of(slide_window.store, slide.id)
    assert sorted(tuple(o["geometry"].coords[0]) for o in stored) == cells
    assert {o["classification"] for o in stored} == {"Lymphocytic infiltrate"}
    assert len(panel.points.data) == 12 and len(panel.layer.data) == 0  # points, not shapes
    np.testing.assert_allclose(panel.points.face_color[0], [160 / 255, 90 / 255, 240 / 255, 1.0])
    assert "Lymphocytic infiltrate: 12 points" in panel.legend.text()
    # A click on a point selects it (Delete removes it); Alt+click removes one at once.
    _click(viewer, cells[3][0] + 2, cells[3][1] - 2)
    assert len(panel.selected_ids()) == 1 and len(annotations_of(slide_window.store, slide.id)) == 12
    panel.delete_button.click()
    _click(viewer, *cells[5], modifiers=["Alt"])
    left = sorted(tuple(o["geometry"].coords[0]) for o in annotations_of(slide_window.store, slide.id))
    assert left == [c for n, c in enumerate(cells) if n not in (3, 5)]
    assert "Lymphocytic infiltrate: 10 points" in panel.legend.text() and len(panel.points.data) == 10
    panel.undo_button.click()
    panel.undo_button.click()
    assert len(annotations_of(slide_window.store, slide.id)) == 12 and len(panel.points.data) == 12
    panel.undo_button.click()  # the last point added goes
    assert "Lymphocytic infiltrate: 11 points" in panel.legend.text()
    exported = [
        f for f in export_slide(slide_window.store, slide)["features"] if f["geometry"]["type"] == "Point"
    ]
    assert len(exported) == 11
    assert exported[0]["properties"]["classification"]["name"] == "Lymphocytic infiltrate"


def test_split_a_drawn_rectangle_with_a_vertical_line(slide_window, qtbot):
    slide = _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    box = _rectangle(panel, 4000, 3000, 5000, 5000, "Tumour stroma")
    panel.choose_tool("Select")
    panel.layer.selected_data = {panel._index_ids.index(box["id"])}
    panel.choose_tool("Split")
    assert panel.layer.mode == "add_path"
    panel.layer.add(
        np.array([[2900, 4300], [5100, 4300]], float), shape_type="path"
    )  # x = 4300, top to bottom
    pieces = annotations_of(slide_window.store, slide.id)
    assert sorted(o["geometry"].area for o in pieces) == [300 * 2000, 700 * 2000]
    assert sum(o["geometry"].area for o in pieces) == box["geometry"].area  # exact
    assert {o["classification"] for o in pieces} == {"Tumour stroma"} and len(panel.layer.data) == 2
    assert "Tumour stroma: 2 shapes" in panel.legend.text()
    panel.undo_button.click()  # one step: the rectangle again
    (again,) = annotations_of(slide_window.store, slide.id)
    assert again["geometry"].equals(box["geometry"])
    # A line that misses it is refused in words, and nothing changes.
    panel.choose_tool("Select")
    panel.layer.selected_data = {0}
    panel.choose_tool("Split")
    panel.layer.add(np.array([[2900, 6000], [5100, 6000]], float), shape_type="path")
    assert "does not cut the annotation" in panel.note.text()
    assert [o["geometry"].area for o in annotations_of(slide_window.store, slide.id)] == [2e6]


def test_hiding_a_class_hides_its_shapes_and_points_on_screen_only(slide_window, qtbot):
    slide = _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    tumour = _rectangle(panel, 1000, 1000, 9000, 9000, "Invasive tumour")
    _rectangle(panel, 12000, 1000, 20000, 9000, "Necrosis")
    panel.class_box.setCurrentText("Necrosis")
    panel.point_at(15000, 12000)
    slide_window.slide.viewer.reset_view()
    qtbot.wait(100)
    viewer = slide_window.slide.viewer

    def necrosis_pixel():
        canvas = viewer.screenshot()
        row, col = viewer.canvas_pixel((5000 * MPP, 16000 * MPP), canvas.shape)
        return canvas[row - 3 : row + 4, col - 3 : col + 4, :3].astype(float).mean(axis=(0, 1))

    shown = necrosis_pixel()
    from qtpy.QtWidgets import QCheckBox

    box = panel.findChild(QCheckBox, "show-Necrosis")
    box.click()  # hide Necrosis
    assert not panel.legend.is_shown("Necrosis")
    assert len(panel.layer.data) == 1 and len(panel.points.data) == 0
    assert panel._index_ids == [tumour["id"]]
    hidden = necrosis_pixel()
    assert np.abs(shown - hidden).max() > 5  # the dark-grey fill is gone from the canvas
    assert len(annotations_of(slide_window.store, slide.id)) == 3  # nothing stored changed
    box.click()  # show it again
    assert len(panel.layer.data) == 2 and len(panel.points.data) == 1
    np.testing.assert_allclose(necrosis_pixel(), shown, atol=2)
    # Annotating with a hidden class shows it again: what is drawn must be seen.
    panel.set_class_visible("Necrosis", False)
    assert len(panel.points.data) == 0
    panel.point_at(15500, 12000)
    assert box.isChecked() and len(panel.points.data) == 2 and len(panel.layer.data) == 2


def test_a_vertex_moved_in_direct_mode_reshapes_the_stored_outline_and_undo_restores_it(slide_window, qtbot):
    slide = _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    box = _rectangle(panel, 4000, 3000, 5000, 5000, "Invasive tumour")
    _look_at(slide_window, qtbot, 4500, 4000, 4.0)
    panel.choose_tool("Vertex")
    assert panel.layer.mode == "direct"
    panel.layer.selected_data = {panel._index_ids.index(box["id"])}
    qtbot.wait(50)
    _drag(panel.layer, (5000, 5000), (5400, 5600))  # the bottom-right corner, dragged out
    (moved,) = annotations_of(slide_window.store, slide.id)
    expected = shapely.Polygon([(4000, 3000), (5000, 3000), (5400, 5600), (4000, 5000)])
    assert moved["id"] == box["id"] and moved["revision"] == box["revision"] + 1
    assert moved["geometry"].normalize().equals_exact(expected.normalize(), 1e-6)
    # By hand: 1000 x 2000 plus the two triangles the corner added (400,000 + 300,000 px²).
    assert moved["geometry"].area == pytest.approx(2_700_000.0)
    assert panel.layer.selected_data == {0}  # still selected, to go on editing
    panel.undo_button.click()
    (back,) = annotations_of(slide_window.store, slide.id)
    assert back["id"] == box["id"] and back["geometry"].equals(box["geometry"])
    panel.redo_button.click()
    assert annotations_of(slide_window.store, slide.id)[0]["geometry"].equals(moved["geometry"])


def _he_slide(window) -> dict:
    """The demo's H&E slide row, without opening it."""
    code = next(r["code"] for r in window.store.worklist() if "HE" in r["modalities"])
    return slides_of_subject(window.store, window.store.subject_by_code(code).id)[0]


def test_outlines_with_holes_are_drawn_with_their_holes(slide_window, qtbot, shared_data):
    """QuPath's own MultiPolygon (one part with 26 holes) imported as GeoJSON, and a square with a
    square hole (what a subtract leaves): on screen the holes show the tissue, not the class fill,
    every hole's outline is drawn, and the legend's area is shapely's (holes left out)."""
    from qtpy.QtWidgets import QCheckBox

    from palmares_desktop.core.slides.annotations import SlideObject, import_geojson, save_objects

    slide = _he_slide(slide_window)
    bare = json.loads((shared_data / "qupath_geojson" / "qupath_core_test_polygon.geojson").read_text())
    feature = {
        "type": "Feature",
        "geometry": bare,
        "properties": {
            "objectType": "annotation",
            "classification": {"name": "Necrosis", "color": [60, 60, 60]},
        },
    }
    objects, refused = import_geojson(
        {"type": "FeatureCollection", "features": [feature]}, slide.width, slide.height
    )
    assert refused == [] and objects[0].geometry.geom_type == "MultiPolygon"
    # A hole over tissue (tumour and stroma of the demo slide), not over the glass.
    ring = shapely.box(10200, 5200, 12200, 7200).difference(shapely.box(10700, 5700, 11700, 6700))
    path = slide_path(slide_window.store, slide)
    under_hole = read_at(path, open_slide(path), (11100, 6100, 11300, 6300), downsample=8.0).rgb
    assert under_hole[..., :3].mean(axis=(0, 1)).min() < 200  # stained tissue, not white glass
    objects.append(SlideObject(ring, classification="Necrosis", color=(60, 60, 60)))
    save_objects(slide_window.store, slide, objects)
    _open_slide(slide_window, qtbot)
    panel = slide_window.slide.panel
    viewer = slide_window.slide.viewer
    multi = objects[0].geometry
    holed = max(multi.geoms, key=lambda p: len(p.interiors))
    assert len(holed.interiors) == 26
    # The drawn polygons: one per part, and the holed part's holes are in its drawn vertices.
    ids, parts = panel._index_ids, panel._index_parts
    assert ids.count(objects[0].id) == 3 and ids.count(objects[1].id) == 1
    k = list(multi.geoms).index(holed)
    drawn = np.asarray(panel.layer.data[[*zip(ids, parts, strict=True)].index((objects[0].id, k))])
    drawn_xy = {tuple(v) for v in drawn[:, ::-1]}  # napari keeps float32 vertices
    holes_xy = [tuple(v) for h in holed.interiors for v in np.asarray(h.coords, np.float32)]
    assert all(v in drawn_xy for v in holes_xy)
    # The legend keeps shapely's areas (holes excluded), not the filled outer rings'.
    area_mm2 = (multi.area + ring.area) * MPP * MPP / 1e6
    assert f"Necrosis: 2 shapes, {area_mm2:.3f} mm²" in panel.legend.text()
    box = panel.findChild(QCheckBox, "show-Necrosis")

    def pixels(points_xy):
        qtbot.wait(50)
        canvas = viewer.screenshot()
        out = []
        for px, py in points_xy:
            row, col = viewer.canvas_pixel((py * MPP, px * MPP), canvas.shape)
            out.append(canvas[row - 3 : row + 4, col - 3 : col + 4, :3].astype(float).mean(axis=(0, 1)))
        return out

    # A point deep in QuPath's largest hole (clear of the parts inside it) and one deep in the region.
    largest_hole = shapely.Polygon(max(holed.interiors, key=lambda h: shapely.Polygon(h).area))
    lake = largest_hole.difference(multi)
    lake = max(getattr(lake, "geoms", [lake]), key=lambda g: g.area)
    in_lake, in_holed = polylabel(lake, 1.0), polylabel(holed, 1.0)
    assert min(lake.boundary.distance(in_lake), holed.boundary.distance(in_holed)) > 10 * 12
    views = [  # (centre x, y, level-0 px per screen px, a point in a hole, a point in the region)
        (11200.0, 6200.0, 8.0, (11200.0, 6200.0), (10450.0, 6200.0)),
        (5000.0, 5000.0, 12.0, (in_lake.x, in_lake.y), (in_holed.x, in_holed.y)),
    ]
    for cx, cy, screen_px, in_hole, in_region in views:
        _look_at(slide_window, qtbot, cx, cy, screen_px)
        shown = pixels([in_hole, in_region])
        box.click()  # hide Necrosis: the bare tissue
        bare_tissue = pixels([in_hole, in_region])
        box.click()
        np.testing.assert_allclose(shown[0], bare_tissue[0], atol=2)  # the hole shows the tissue
        assert np.abs(shown[1] - bare_tissue[1]).max() > 5  # the region itself has the class fill

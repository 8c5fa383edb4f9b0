"""A crowded slide in the slide room, on the real window and a copy of the demo store: 1,200 stored
squares of known area in two classes (more than CROWDED) and a run of 3,600 detections. Zoomed out,
at most VIEW_SHAPES outlines are editable shapes and the others are drawn in the objects picture,
which tints the slide toward the class colour over a square; the legend's class areas, worked out in
the background, are shapely's; zoomed in to a few squares they become editable shapes, and a delete
and its undo go through the session and the store."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import shapely

from palmares_desktop.core.slides.detections import Detections, pack_tiles
from palmares_desktop.core.slides.object_picture import FILL_ALPHA
from palmares_desktop.core.store.records import slides_of_subject
from palmares_desktop.core.store.slide_objects import annotations_of, save_annotations, save_detection_run
from palmares_desktop.gui.slide_annotation_panel import CROWDED, PICTURE_LAYER, VIEW_SHAPES

LOAD_TIMEOUT_MS = 60_000
MPP = 0.5  # the demo slide's µm per level-0 pixel
COLUMNS, ROWS, PITCH = 40, 30, 200  # the grid of squares, level-0 pixels
ORIGIN = (7000, 4000)  # its top-left corner: over the demo slide's tissue
CLASSES = {"Invasive tumour": (200, 0, 0), "Normal ducts/lobules": (0, 160, 220)}
SAMPLE = (20, 16)  # (column, row) of the square looked at: an invasive-tumour one
HOLED = (22, 16)  # (column, row) of a 100-px square with a 60-px square hole (what a subtract leaves)


@pytest.fixture
def slide_window(open_window, demo_store_dir, tmp_path):
    from palmares_desktop.core.profile import ReaderProfile

    root = tmp_path / "store"
    shutil.copytree(demo_store_dir, root)  # what is stored here must not reach other tests' store
    return open_window(root, ReaderProfile("Test Pathologist", "pathologist", "IT03"), (1600, 1000))


def _he_code(window) -> str:
    return next(r["code"] for r in window.store.worklist() if "HE" in r["modalities"])


def _open_slide(window, qtbot) -> None:
    code = _he_code(window)
    index = window.worklist.proxy.index(window.worklist.visible_codes().index(code), 0)
    window.worklist.table.doubleClicked.emit(index)
    window.tabs.setCurrentIndex(2)  # the slide room draws its slide once shown
    qtbot.waitUntil(lambda: window.slide.panel.layer is not None, timeout=LOAD_TIMEOUT_MS)
    qtbot.wait(200)


def _look_at(window, qtbot, x: float, y: float, screen_px: float) -> None:
    """Centre the camera on level-0 (x, y) at `screen_px` level-0 pixels per screen pixel."""
    camera = window.slide.viewer.model.scene.camera
    camera.center = (y * MPP, x * MPP)
    camera.zoom = 1.0 / (screen_px * MPP)
    qtbot.wait(50)


def _settled(panel, qtbot) -> None:
    """Wait for the background work (detections, picture, class summary) to be done."""
    qtbot.waitUntil(lambda: not panel.busy(), timeout=LOAD_TIMEOUT_MS)


def _square(column: int, row: int) -> tuple[shapely.Polygon, str]:
    """The stored square of a grid cell (sides 60 to 100 px, so the areas are not all alike; the
    HOLED one with a hole) and its class."""
    side = 60 + 5 * ((column * 7 + row * 3) % 9)
    x, y = ORIGIN[0] + PITCH * column, ORIGIN[1] + PITCH * row
    name = list(CLASSES)[(column + row) % 2]
    if (column, row) == HOLED:
        return shapely.box(x, y, x + 100, y + 100).difference(
            shapely.box(x + 20, y + 20, x + 80, y + 80)
        ), name
    return shapely.box(x, y, x + side, y + side), name


def _store_crowded_slide(window):
    """1,200 squares and 3,600 detections (in the gaps between the squares) on the demo H&E slide."""
    code = _he_code(window)
    slide = slides_of_subject(window.store, window.store.subject_by_code(code).id)[0]
    assert slide.mpp_x == MPP and slide.mpp_y == MPP
    assert ORIGIN[0] + PITCH * COLUMNS < slide.width and ORIGIN[1] + PITCH * ROWS < slide.height
    squares = [_square(c, r) for r in range(ROWS) for c in range(COLUMNS)]
    assert len(squares) > CROWDED
    save_annotations(
        window.store,
        slide,
        [{"geometry": g, "classification": name, "color": CLASSES[name]} for g, name in squares],
    )
    cells = np.array(
        [(ORIGIN[0] + PITCH * c, ORIGIN[1] + PITCH * r) for r in range(ROWS) for c in range(COLUMNS)]
    )
    centres = np.concatenate([cells + (150, 150), cells + (150, 50), cells + (50, 150)]).astype(float)
    angle = np.linspace(0, 2 * np.pi, 13)[:-1]
    ring = np.c_[np.cos(angle), np.sin(angle)] * 6.0  # nuclei 6 µm across
    names = ["area_um2", "circularity", "axis_ratio", "hematoxylin_od_mean", "small_round"]
    n = len(centres)
    found = Detections(
        centres,
        np.arange(n + 1, dtype=np.int64) * len(ring),
        (centres[:, None, :] + ring[None]).reshape(-1, 2),
        np.zeros((n, len(names))),
        names,
    )
    save_detection_run(window.store, slide, {"method": "test", "measurement_names": names}, pack_tiles(found))
    return slide, squares, n


def _expected_areas_mm2(squares) -> dict[str, float]:
    """Shapely's area of each class's squares, in µm² (the slide's MPP) then mm²."""
    um2 = {name: 0.0 for name in CLASSES}
    for g, name in squares:
        um2[name] += shapely.area(g) * MPP * MPP
    return {name: a / 1e6 for name, a in um2.items()}


def _check_summary(summary: dict, squares) -> None:
    for name, area in _expected_areas_mm2(squares).items():
        assert summary[name]["shapes"] == sum(1 for _, n in squares if n == name)
        assert summary[name]["area_mm2"] == pytest.approx(area, rel=1e-9)


def test_a_crowded_slide_draws_a_picture_summarises_in_the_background_and_stays_editable(slide_window, qtbot):
    slide, squares, n_detections = _store_crowded_slide(slide_window)
    panel = slide_window.slide.panel
    viewer = slide_window.slide.viewer
    summaries: list[dict] = []
    show_summary = panel.legend.show_summary

    def spy(summary):  # what the legend is given, besides the words it shows
        summaries.append(summary)
        show_summary(summary)

    panel.legend.show_summary = spy
    _open_slide(slide_window, qtbot)
    assert panel.crowded() and len(panel.session.objects) == len(squares)
    _settled(panel, qtbot)
    assert panel.detections is not None and len(panel.detections) == n_detections
    assert len(panel.layer.data) <= VIEW_SHAPES and len(set(panel._index_ids)) <= VIEW_SHAPES
    assert viewer.layer(PICTURE_LAYER) is not None

    # The legend's areas, worked out in the background, are shapely's sums of the stored squares.
    _check_summary(summaries[-1], squares)
    legend = panel.legend.text()
    for name, area in _expected_areas_mm2(squares).items():
        assert f"{name}: 600 shapes, {area:.3f} mm²" in legend

    # Zoomed to 4 level-0 px per screen px: hundreds of squares in view, none of them editable;
    # over a square the picture tints the slide toward the class colour by the fill's opacity.
    sample, sample_class = _square(*SAMPLE)
    assert sample_class == "Invasive tumour"
    cx, cy = sample.centroid.x, sample.centroid.y
    _look_at(slide_window, qtbot, cx, cy, 4.0)
    _settled(panel, qtbot)
    in_view = sum(1 for g, _ in squares if shapely.box(*panel.visible_box()).intersects(g))
    assert in_view > VIEW_SHAPES
    assert len(panel.layer.data) <= VIEW_SHAPES and f"{in_view} outlines in view" in panel.note.text()
    sample_id = next(i for i, o in panel.session.objects.items() if o["geometry"].equals(sample))
    assert sample_id not in panel._index_ids  # not a shape: drawn in the picture only
    picture = viewer.layer(PICTURE_LAYER)

    def colour_at(x, y) -> np.ndarray:
        qtbot.wait(50)
        canvas = viewer.screenshot()
        row, col = viewer.canvas_pixel((y * MPP, x * MPP), canvas.shape)
        return canvas[row - 3 : row + 4, col - 3 : col + 4, :3].astype(float).mean(axis=(0, 1))

    shown = colour_at(cx, cy)
    picture.visible = False
    bare = colour_at(cx, cy)
    picture.visible = True
    np.testing.assert_allclose(colour_at(cx, cy), shown, atol=1)
    rgb = np.asarray(CLASSES[sample_class], float)
    tint = shown - bare
    assert np.abs(tint).max() > 5  # the square is seen
    assert np.dot(tint, rgb - bare) > 0.9 * np.linalg.norm(tint) * np.linalg.norm(rgb - bare)  # toward red
    np.testing.assert_allclose(shown, bare + FILL_ALPHA / 255 * (rgb - bare), atol=6)
    # A hole in a square drawn in the picture shows the bare tissue; the square around it is tinted.
    holed, _ = _square(*HOLED)
    assert len(holed.interiors) == 1 and holed.area == 100 * 100 - 60 * 60
    hx, hy = holed.centroid.x, holed.centroid.y
    in_ring = (holed.bounds[0] + 10, hy)
    assert holed.contains(shapely.Point(in_ring)) and not holed.contains(shapely.Point(hx, hy))
    shown_hole, shown_ring = colour_at(hx, hy), colour_at(*in_ring)
    picture.visible = False
    bare_hole, bare_ring = colour_at(hx, hy), colour_at(*in_ring)
    picture.visible = True
    np.testing.assert_allclose(shown_hole, bare_hole, atol=2)
    assert np.abs(shown_ring - bare_ring).max() > 5

    # Zoomed in to a few squares: they become editable shapes (the picture draws none of them twice).
    _look_at(slide_window, qtbot, cx, cy, 1.0)
    _settled(panel, qtbot)
    view = shapely.box(*panel.visible_box())
    seen = [i for i, o in panel.session.objects.items() if view.intersects(o["geometry"])]
    assert 4 <= len(seen) <= VIEW_SHAPES
    assert set(seen) <= set(panel._index_ids) and sample_id in panel._index_ids
    assert len(panel.layer.data) <= VIEW_SHAPES
    assert not panel.note.text().endswith("select or edit them.")

    # Delete it, as the pathologist does (Select, click, Delete), then undo: through the session.
    panel.choose_tool("Select")
    panel.layer.selected_data = {panel._index_ids.index(sample_id)}
    assert panel.selected_ids() == [sample_id]
    panel.delete_button.click()
    stored = annotations_of(slide_window.store, slide.id)
    assert len(stored) == len(squares) - 1 and sample_id not in {o["id"] for o in stored}
    assert sample_id not in panel.session.objects and sample_id not in panel._index_ids
    _settled(panel, qtbot)
    rest = [(g, name) for g, name in squares if not g.equals(sample)]
    _check_summary(summaries[-1], rest)
    panel.undo_button.click()
    stored = annotations_of(slide_window.store, slide.id)
    assert len(stored) == len(squares)
    back = next(o for o in stored if o["geometry"].equals(sample))
    assert back["classification"] == sample_class and back["color"] == CLASSES[sample_class]
    assert back["id"] in panel.session.objects and back["id"] in panel._index_ids
    _settled(panel, qtbot)
    _check_summary(summaries[-1], squares)


def test_a_pathologist_lands_in_the_slide_room(slide_window, qtbot):
    """Opening a subject from the worklist shows a pathologist the slide room (a radiologist the CT/PET
    room): the slide is drawn at once, without a detour through the CT/PET tab."""
    from palmares_desktop.gui.main_window import SLIDE_TAB

    code = _he_code(slide_window)
    index = slide_window.worklist.proxy.index(slide_window.worklist.visible_codes().index(code), 0)
    slide_window.worklist.table.doubleClicked.emit(index)
    assert slide_window.tabs.currentIndex() == SLIDE_TAB
    qtbot.waitUntil(lambda: slide_window.slide.slide_layer() is not None, timeout=LOAD_TIMEOUT_MS)

"""The slide room's annotation side panel: class, tools, undo/redo, class legend with areas, TILs.

The panel only wires intent to core: shapes the pathologist draws on a napari Shapes layer are
turned into outlines by core.slides.annotation_session tools, added to the session (which stores
them at once), and the layers are redrawn from the session. Shapes are drawn in level-0 pixel
coordinates (the layers have the slide layer's µm scale), with outline widths kept at about two
screen pixels whatever the zoom; an outline's holes are drawn as holes (see `_drawn`). Point
annotations (cells) are drawn on a napari Points layer, never as shapes. The wand and points tools take clicks on the canvas (a viewer mouse callback; a drag
still pans): the wand grows a region with core.slides.wand at the resolution on screen (the slide
read and the growth in a worker thread; the result is added here, undoably), the points
tool adds a point, selects the one under the click, or removes it with Alt+click (as in QuPath).
Split cuts the selected outline with a line drawn across it; Vertex is napari's direct mode, whose
vertex moves reshape the stored outline. The legend's check boxes hide a class on screen only. The
TILs box shows core.slides.analysis.tils and stores only the pathologist's score.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any

import numpy as np
import shapely
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QApplication,
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Slide
from palmares_desktop.core.slides import annotation_session as tools
from palmares_desktop.core.slides.annotation_session import AnnotationSession
from palmares_desktop.core.slides.annotations import study_classes
from palmares_desktop.core.slides.object_picture import draw_calls, outline_bounds, render_objects
from palmares_desktop.gui.slide_class_legend import UNCLASSIFIED, ClassLegend, swatch
from palmares_desktop.gui.workers import WorkerPool

log = logging.getLogger(__name__)
ANNOTATION_LAYER = "Annotations"
POINT_LAYER = "Points"
#: tool button -> napari Shapes mode (the button ids are the order here)
MODES = {
    "Pan": "pan_zoom",
    "Select": "select",
    "Polygon": "add_polygon",
    "Rectangle": "add_rectangle",
    "Ellipse": "add_ellipse",
    "Freehand": "add_polygon_lasso",
    "Brush": "add_path",
    "Wand": "pan_zoom",  # clicks are taken by the panel's viewer callback
    "Points": "pan_zoom",
    "Split": "add_path",
    "Vertex": "direct",
}
#: where each tool sits in the 3-column grid (row, column): navigation, shapes, region tools, cells
PLACES = {
    "Pan": (0, 0),
    "Select": (0, 1),
    "Vertex": (0, 2),
    "Polygon": (1, 0),
    "Rectangle": (1, 1),
    "Ellipse": (1, 2),
    "Freehand": (2, 0),
    "Brush": (2, 1),
    "Wand": (2, 2),
    "Points": (3, 0),
    "Split": (3, 1),
}
TIPS = {
    "Pan": "Drag to move around the slide, wheel to zoom.",
    "Select": "Click an annotation to select it (Shift for more); drag to move it.",
    "Vertex": "Drag a vertex of the selected outline to reshape it.",
    "Split": "Select one outline, choose Split, then draw a line across it (double-click to end).",
    "Polygon": "Click the vertices; double-click to close.",
    "Rectangle": "Drag a rectangle.",
    "Ellipse": "Drag an ellipse.",
    "Freehand": "Hold and draw a closed outline.",
    "Brush": "Draw a stroke as wide as the brush size (µm); double-click to end.",
    "Wand": "Click: grows a region of similar colour around the point, in what is on screen.",
    "Points": "Click: adds a cell of the current class; click a point to select it, Alt+click removes it.",
}
TILS_GEOMETRY_FAILED = (
    "The stromal TILs aid cannot be worked out from these outlines (the stroma and the invasive border "
    "meet only along their edges); move an outline so they overlap, or draw the stroma inside the border."
)
WAND_WORKING = "Wand: reading the slide and growing the region… (the window stays usable meanwhile)"
WAND_BUSY = "The wand is still growing the last region: wait until it is added, then click again."
POINT_UM = 10.0  # diameter of a drawn point (about a nucleus), µm; at least 10 screen pixels
CLICK_SLOP_PX = 4  # a press that moves further than this is a drag (pan), not a click
POINT_PICK_PX = 7  # a click this close (screen pixels) to a point selects it
PICTURE_LAYER = "Objects (picture)"
#: Above this many annotations a slide is "crowded": only outlines in view are editable napari
#: shapes (napari builds Python objects and meshes per shape: seconds for 10,000), the rest and
#: every detection are drawn as one picture of the view (core.slides.object_picture, in a worker),
#: and the legend's areas and the TILs aid are worked out in the background.
CROWDED = 1000
VIEW_SHAPES = 150  # at most this many outlines in view become shapes; more: the picture only
PICTURE_MARGIN = 0.25  # the picture covers the view and this fraction of it on each side
PICTURE_AT_ONCE = 300  # a picture of at most this many shapes is drawn at once (~20 ms), not in a worker
ZOOMED_OUT_NOTE = (
    "{n} outlines in view: they are drawn as a picture; zoom in (to {limit} or fewer in view) to "
    "select or edit them."
)


def _compact(button: QPushButton) -> QPushButton:
    """A button that may be narrower than the style's 80-pixel minimum, so rows fit the side panel."""
    button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    button.setMinimumWidth(button.fontMetrics().horizontalAdvance(button.text()) + 12)
    return button


def _parts(geometry) -> list[np.ndarray]:
    """(row, column) vertices napari draws for each polygon part, holes included (see `_drawn`)."""
    return [_drawn(p)[0] for p in _polygons(geometry)]


def _rings(part) -> list[np.ndarray]:
    """(x, y) vertices of a polygon's exterior and then of each hole, without the closing vertex."""
    return [np.asarray(r.coords, float)[:-1] for r in (part.exterior, *part.interiors)]


def _drawn(part) -> tuple[np.ndarray, np.ndarray | None]:
    """(row, column) vertices of one napari polygon that draws `part` with its holes, and for a part
    with holes the (ring, vertex) each drawn vertex stands for (ring 0 the exterior; None without holes).

    napari's Shapes layer (0.5 and later) draws a hole when the polygon's vertices go round the
    exterior back to its first vertex, step to the hole, go round it back to its first vertex and
    return: an edge walked twice (the step in and out) is neither filled across nor outlined, so the
    face excludes the hole and each ring gets its own outline in the class colour.
    """
    rings = _rings(part)
    if len(rings) == 1:
        return rings[0][:, ::-1], None
    start = rings[0][0]
    xy, owners = [rings[0], rings[0][:1]], [[(0, v) for v in range(len(rings[0]))], [(0, 0)]]
    for n, ring in enumerate(rings[1:], start=1):
        # Start the hole at a vertex other than the exterior's first (a hole may touch it there).
        first = next((v for v, p in enumerate(ring) if not np.array_equal(p, start)), 0)
        order = np.roll(np.arange(len(ring)), -first)
        xy += [ring[order], ring[order[:1]], rings[0][:1]]
        owners += [[(n, int(v)) for v in order], [(n, int(order[0]))], [(0, 0)]]
    xy, owners = xy[:-1], owners[:-1]  # napari closes the polygon back to the exterior's start
    return np.concatenate(xy)[:, ::-1], np.asarray([o for group in owners for o in group])


def _moved_part(part, drawn_rc) -> Any:
    """`part` after napari moved vertices of its drawn polygon (`_drawn`): each ring vertex goes where
    whichever of its drawn copies was moved to; None when the drawing no longer matches the part."""
    xy = np.asarray(drawn_rc)[:, ::-1]
    before, owners = _drawn(part)
    if owners is None:
        return shapely.Polygon(xy) if len(xy) >= 3 else None
    if len(xy) != len(before):
        return None
    rings = _rings(part)
    # napari keeps vertices as float32: a vertex moved is one that differs from its float32 self.
    moved = np.any(xy != before[:, ::-1].astype(np.float32), axis=1)
    for (ring, vertex), p in zip(owners[moved], xy[moved], strict=True):
        rings[ring][vertex] = p
    return shapely.Polygon(rings[0], rings[1:])


def _polygons(geometry) -> list:
    return [p for p in getattr(geometry, "geoms", [geometry]) if p.geom_type == "Polygon"]


class AnnotationPanel(QWidget):
    changed = Signal()  # the annotations changed (stored)
    message = Signal(str)  # a refusal or a note, in words

    def __init__(self, viewer, parent: QWidget | None = None, workers: WorkerPool | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer  # gui.napari_adapter.EmbeddedViewer
        self.session: AnnotationSession | None = None
        self.layer = None
        self.points = None
        self._index_ids: list[str] = []  # napari shape index -> annotation id
        self._index_parts: list[int] = []  # napari shape index -> polygon part of that annotation
        self._point_ids: list[str] = []  # napari point index -> annotation id
        self._selected_points: set[str] = set()
        self._split_ids: list[str] = []  # selection when Split was chosen (napari clears it)
        self._syncing = False
        self._removing: list[str] = []
        self._scale = (1.0, 1.0)
        self._slide_file: tuple[Any, Any] | None = None  # (path, SlideInfo), opened at the first wand click
        self.workers = workers if workers is not None else WorkerPool(self)
        self._wand_running = False  # a wand click is being worked out in the background
        self._zoom_timer = QTimer(self, singleShot=True, interval=150)
        self._zoom_timer.timeout.connect(self._restyle)
        # A pan or zoom paints the slide first; the objects follow in the next event-loop turn.
        self._view_timer = QTimer(self, singleShot=True, interval=0)
        self._view_timer.timeout.connect(self._view_changed)
        self._last_zoom = None
        self.detections = None  # the slide's stored detections (core Detections), drawn in the picture
        self._on_view: set[str] = set()  # crowded slide: the annotations now on the Shapes layer
        self._picture_running = self._picture_dirty = False
        self._summary_running = self._detections_running = False
        self._summary_generation = 0
        self._summary_pending = False  # a summary waits for the detections and their picture
        self._crowded_note = False
        self._collected: tuple | None = None  # see _collect
        self._revision = 0  # bumped at every _collect (the objects or the hidden classes may differ)
        self._picture_key: tuple | None = None  # what the picture on screen shows (see _picture_covers)

        self.classes = study_classes()
        self.class_box = QComboBox()
        for c in self.classes:
            self.class_box.addItem(swatch(c["colour"]), c["name"])
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        grid = QGridLayout()
        grid.setSpacing(3)
        for n, name in enumerate(MODES):
            button = QPushButton(name)
            button.setCheckable(True)
            button.setObjectName(f"tool-{name.lower()}")
            button.setToolTip(TIPS[name])
            _compact(button)
            self.tool_group.addButton(button, n)
            grid.addWidget(button, *PLACES[name])
        self.tool_group.buttons()[0].setChecked(True)
        self.tool_group.idClicked.connect(self._tool_chosen)
        self.brush_um = QDoubleSpinBox(minimum=1.0, maximum=5000.0, value=50.0, suffix=" µm", decimals=0)
        self.brush_um.setToolTip("Brush width, in µm on the slide.")
        self.wand_tolerance = QDoubleSpinBox(minimum=1.0, maximum=60.0, value=12.0, suffix=" ΔE", decimals=0)
        self.wand_tolerance.setSingleStep(2)
        self.wand_tolerance.setToolTip(
            "How different a colour may be from the clicked one and still join the wand's region "
            "(CIE L*a*b* distance; about 2 is just noticeable). Raise it to grow further."
        )
        sizes = QHBoxLayout()
        sizes.addWidget(QLabel("Brush"))
        sizes.addWidget(self.brush_um, 1)
        sizes.addWidget(QLabel("Wand"))
        sizes.addWidget(self.wand_tolerance, 1)
        self.undo_button, self.redo_button = QPushButton("Undo"), QPushButton("Redo")
        self.delete_button, self.merge_button = QPushButton("Delete"), QPushButton("Merge")
        self.undo_button.clicked.connect(lambda: self._apply(lambda s: s.undo()))
        self.redo_button.clicked.connect(lambda: self._apply(lambda s: s.redo()))
        self.delete_button.clicked.connect(self._delete_selected)
        self.merge_button.clicked.connect(lambda: self._apply(lambda s: s.merge(self.selected_ids())))
        edits = QHBoxLayout()
        for b in (self.undo_button, self.redo_button, self.delete_button, self.merge_button):
            edits.addWidget(_compact(b))

        draw = QGroupBox("Annotate")
        form = QFormLayout(draw)
        form.setVerticalSpacing(4)
        form.addRow("Class", self.class_box)
        form.addRow(grid)
        form.addRow(sizes)
        form.addRow(edits)

        self.legend = ClassLegend(self.classes)
        self.legend.visibility_changed.connect(self.set_class_visible)
        legend_box = QGroupBox("Classes (shown), counts and areas")
        QVBoxLayout(legend_box).addWidget(self.legend)

        self.tils_text = QLabel("Draw tumour stroma and lymphocytic infiltrate to estimate stromal TILs.")
        self.tils_text.setWordWrap(True)
        self.tils_score = QDoubleSpinBox(minimum=0.0, maximum=100.0, value=0.0, suffix=" %", decimals=0)
        self.tils_score.setSingleStep(5)
        self.tils_store = QPushButton("Store my score")
        self.tils_store.clicked.connect(self._store_tils)
        tils_box = QGroupBox("Stromal TILs (TILs Working Group)")
        tils_layout = QVBoxLayout(tils_box)
        tils_layout.addWidget(self.tils_text)
        score_row = QHBoxLayout()
        score_row.addWidget(QLabel("Your score"))
        score_row.addWidget(self.tils_score)
        score_row.addWidget(self.tils_store)
        tils_layout.addLayout(score_row)

        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #a04000;")
        content = QWidget()
        inner = QVBoxLayout(content)
        inner.setContentsMargins(4, 0, 4, 0)
        for widget in (draw, legend_box, tils_box, self.note):
            inner.addWidget(widget)
        inner.addStretch(1)
        # In a scroll area: on a short screen the panel scrolls instead of making the window taller.
        scroll = QScrollArea()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.viewer.model.mouse_drag_callbacks.append(self._on_canvas_press)
        self.setEnabled(False)
        self._update_buttons()

    # -------------------------------------------------------------- binding
    def bind(self, store, slide: Slide, scale: tuple[float, float]) -> None:
        """Show and edit the annotations of `slide` (its layers drawn at `scale` µm per pixel (y, x))."""
        self.session = AnnotationSession(store, slide)
        self._scale = scale
        self._slide_file = None
        self._selected_points.clear()
        self.viewer.remove(ANNOTATION_LAYER)
        self.viewer.remove(POINT_LAYER)
        self.viewer.remove(PICTURE_LAYER)
        self.detections = None
        self._on_view = set()
        self._picture_dirty = self._summary_pending = False
        self._collected = self._picture_key = None
        self.layer = self.viewer.model.add_shapes(
            name=ANNOTATION_LAYER,
            scale=scale,
            ndim=2,
            edge_width=2.0,
            opacity=1.0,
            units=self.viewer.world_units(),
        )
        self.layer.events.data.connect(self._on_data)
        mpp = self.session.mpp[0]
        self.points = self.viewer.model.add_points(
            np.empty((0, 2)),
            name=POINT_LAYER,
            scale=scale,
            ndim=2,
            size=POINT_UM / mpp if mpp else 20.0,
            border_width=0.15,
            border_width_is_relative=True,
            blending="translucent_no_depth",  # drawn over the outlines' fill, never hidden by it
            units=self.viewer.world_units(),
        )
        self.viewer.model.scene.camera.events.zoom.connect(self._on_zoom)
        self.viewer.model.scene.camera.events.zoom.connect(self._on_view_moved)
        self.viewer.model.scene.camera.events.center.connect(self._on_view_moved)
        self.setEnabled(True)
        self.redraw()
        self._tool_chosen(self.tool_group.checkedId())
        self._load_detections()

    def unbind(self) -> None:
        if self.layer is not None:
            for event, slot in (
                ("zoom", self._on_zoom),
                ("zoom", self._on_view_moved),
                ("center", self._on_view_moved),
            ):
                with contextlib.suppress(TypeError, RuntimeError, ValueError):
                    getattr(self.viewer.model.scene.camera.events, event).disconnect(slot)
        self.detections = None
        self._on_view = set()
        self._collected = self._picture_key = None
        self.session, self.layer, self.points = None, None, None
        self._index_ids, self._index_parts, self._point_ids = [], [], []
        self._selected_points.clear()
        self._slide_file = None
        self.setEnabled(False)

    def selected_ids(self) -> list[str]:
        """The selected annotations: outlines selected on the Shapes layer and points selected with
        the points tool."""
        if self.layer is None:
            return []
        shapes = {self._index_ids[i] for i in self.layer.selected_data if i < len(self._index_ids)}
        return sorted(shapes | self._selected_points)

    def tool(self) -> str:
        return list(MODES)[self.tool_group.checkedId()]

    def choose_tool(self, name: str) -> None:
        """Press a tool's button (as a click on it does)."""
        self.tool_group.button(list(MODES).index(name)).click()

    # ------------------------------------------------------------- drawing
    def _tool_chosen(self, index: int) -> None:
        if self.layer is None:
            return
        name = list(MODES)[index]
        if name == "Split":  # napari clears the selection when a drawing mode starts: keep it
            self._split_ids = self.selected_ids()
        self.layer.mode = MODES[name]
        self.viewer.model.layers.selection.active = self.layer
        if name == "Split" and len(self._split_ids) != 1:
            self.note.setText(
                "Split: draw a line across one outline (select it first when lines cross several)."
            )

    def _on_data(self, event) -> None:
        if self._syncing or self.session is None:
            return
        action = str(getattr(event, "action", ""))
        if action.endswith("REMOVING") or action == "removing":
            self._removing = [
                self._index_ids[i] for i in self.layer.selected_data if i < len(self._index_ids)
            ]
            return
        if action.endswith("REMOVED") or action == "removed":
            gone, self._removing = self._removing, []
            self._apply(lambda s: s.delete(gone))
            return
        if action.endswith("ADDED") or action == "added":
            index = len(self.layer.data) - 1
            if self.tool() == "Split":
                self._apply(lambda s: self._split_drawn(s, index))
            else:
                self._apply(lambda s: self._add_drawn(s, index))
        elif action.endswith("CHANGED") or action == "changed":
            indices = [i for i in (getattr(event, "data_indices", ()) or ()) if 0 <= i < len(self._index_ids)]
            changed = self._changed_geometries(indices)  # read them all before the redraw
            if changed:
                self._apply(lambda s: s.reshape_many(changed))

    def _changed_geometries(self, indices: list[int]) -> dict:
        """New geometry of each annotation with a moved shape: the moved part with its vertices (a hole's
        too) where napari put them, the annotation's other parts kept."""
        out: dict[str, Any] = {}
        for i in indices:
            annotation_id = self._index_ids[i]
            original = out.get(annotation_id) or self.session.objects[annotation_id]["geometry"]
            parts = _polygons(original)
            k = self._index_parts[i]
            moved = _moved_part(parts[k], self.layer.data[i]) if k < len(parts) else None
            if moved is None:
                continue
            parts[k] = moved
            out[annotation_id] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
        return out

    def _drawn_geometry(self, index: int):
        session = self.session
        rc = np.asarray(self.layer.data[index], float)
        xy = rc[:, ::-1]
        kind = self.layer.shape_type[index]
        w, h = session.width, session.height
        if kind == "rectangle":
            return tools.rectangle(xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max(), w, h)
        if kind == "ellipse":
            (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
            return tools.ellipse((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, w, h)
        if kind in ("path", "line"):
            return tools.brush(xy, self.brush_um.value(), session.mpp, w, h)
        return tools.polygon(xy, w, h)

    def _add_drawn(self, session: AnnotationSession, index: int) -> None:
        session.add(self._drawn_geometry(index), self._drawing_class())

    def _drawing_class(self, name: str | None = None) -> str:
        """The current class (or `name`), shown again if it was hidden (what is drawn must be seen)."""
        name = name or self.class_box.currentText()
        if not self.legend.is_shown(name):
            self.legend.set_shown(name, True, quiet=True)  # the edit's redraw follows
        return name

    def _split_drawn(self, session: AnnotationSession, index: int) -> None:
        """Split the outline selected when Split was chosen (or the only one the line crosses)."""
        line = np.asarray(self.layer.data[index], float)[:, ::-1]
        targets = [i for i in self._split_ids if i in session.objects] or session.crossing(line)
        if not targets:
            raise tools.ToolError(
                "The line does not cross any outline: draw it across the annotation to split, "
                "from outside it on one side to outside it on the other."
            )
        if len(targets) > 1:
            raise tools.ToolError(
                f"The line crosses {len(targets)} annotations: select the one to split "
                "(Select tool), then choose Split again."
            )
        session.split(targets[0], line)
        self._split_ids = []

    # ------------------------------------------------------------ clicks
    def _on_canvas_press(self, viewer, event):
        """Viewer mouse callback: a click (no drag) with the wand or points tool; a drag still pans."""
        if self.session is None or self.layer is None or self.tool() not in ("Wand", "Points"):
            return
        if getattr(event, "button", 1) not in (None, 1):
            return
        start = np.asarray(event.pos, float)
        position = tuple(event.position)
        alt = any(m == "Alt" for m in (event.modifiers or ()))  # vispy keys compare equal to their names
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or float(np.hypot(*(np.asarray(event.pos, float) - start))) > CLICK_SLOP_PX
            yield
        if moved:
            return
        row, col = np.asarray(self.layer.world_to_data(position), float)[-2:]
        if self.tool() == "Wand":
            self.wand_at(col, row)
        else:
            self.point_at(col, row, alt=alt)

    def screen_px(self) -> float:
        """Level-0 pixels per screen pixel at the current zoom."""
        zoom = self.viewer.model.scene.camera.zoom or 1.0  # screen pixels per world unit (µm)
        return 1.0 / (zoom * max(self._scale[1], 1e-9))

    def visible_box(self) -> tuple[float, float, float, float]:
        """The level-0 box (x0, y0, x1, y1) on screen."""
        zoom = self.viewer.model.scene.camera.zoom or 1.0
        cy, cx = np.asarray(self.viewer.model.scene.camera.center, float)[-2:]
        h, w = self.viewer.model.canvas.size
        sy, sx = self._scale
        return (
            (cx - w / 2 / zoom) / sx,
            (cy - h / 2 / zoom) / sy,
            (cx + w / 2 / zoom) / sx,
            (cy + h / 2 / zoom) / sy,
        )

    @property
    def wand_busy(self) -> bool:
        """Whether a wand click is still being worked out in the background."""
        return self._wand_running

    def wand_at(self, x: float, y: float) -> None:
        """The wand at level-0 (x, y): the region grown at the zoom on screen, of the current class.

        The slide is read and the region grown in a worker thread (core.slides.wand), so the window
        stays live; a click while one is being worked out is refused in words. The region is added to
        the session here, on the GUI thread, as one undoable edit, exactly as the core wand gave it."""
        from palmares_desktop.core.slides.wand import WandParams

        session = self.session
        if session is None:
            return
        if self._wand_running:
            self.note.setText(WAND_BUSY)
            return
        try:
            path = self._slide_file[0] if self._slide_file else self._slide_path()  # the store: here
            params = WandParams(tolerance=float(self.wand_tolerance.value()))
        except PalmaresError as exc:
            self.note.setText(str(exc))
            self.message.emit(str(exc))
            return
        opened = self._slide_file[1] if self._slide_file else None
        name, screen_px, visible = self.class_box.currentText(), self.screen_px(), self.visible_box()

        def work():  # worker thread: open the slide (first click), read its pixels, grow the region
            from palmares_desktop.core.slides import wand
            from palmares_desktop.core.slides.reader import open_slide

            info = opened
            try:
                info = info or open_slide(path)
                return info, wand.wand(path, info, x, y, screen_px, visible, params)
            except PalmaresError as exc:  # a refusal in words, not a failure
                return info, exc

        def done(outcome) -> None:
            self._wand_done()
            info, result = outcome
            if self.session is not session:  # another slide (or none) since the click
                return
            if info is not None:
                self._slide_file = (path, info)
            if isinstance(result, PalmaresError):
                self.note.setText(str(result))
                self.message.emit(str(result))
            else:
                self._add_wand(result, name, params)

        def failed(exc) -> None:
            self._wand_done()
            if self.session is session:
                self.note.setText(f"The wand failed: {exc}")

        self._wand_running = True
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        self.note.setText(WAND_WORKING)
        self.workers.start(work, on_success=done, on_failure=failed, name="wand")

    def _wand_done(self) -> None:
        self._wand_running = False
        QApplication.restoreOverrideCursor()

    def _add_wand(self, result, name: str, params) -> None:
        """Add the wand's region (of class `name`, chosen at the click) and say what was added."""
        added: list = []

        def edit(session: AnnotationSession) -> None:
            added.append(
                session.add(
                    result.geometry, self._drawing_class(name), measurements={"wand": result.to_dict()}
                )
            )

        self._apply(edit)
        if added:
            area = f"{result.area_mm2:.3f} mm²" if result.area_mm2 is not None else f"{result.pixels} pixels"
            text = f"Wand: {area} of {name} added (tolerance {params.tolerance:.0f} ΔE)."
            if result.touches_edge:
                text += " It reached the edge of the view: zoom out or pan and click again to take in more."
            self.note.setText(text)

    def point_at(self, x: float, y: float, alt: bool = False) -> None:
        """The points tool at level-0 (x, y): select the point under the click, remove it (Alt), or add
        a point of the current class."""
        session = self.session
        if session is None:
            return
        near = session.nearest_point(x, y, POINT_PICK_PX * self.screen_px(), self.legend.hidden())
        if near is not None and alt:
            self._selected_points.discard(near)
            self._apply(lambda s: s.delete([near]))
        elif near is not None:
            self._selected_points = set() if near in self._selected_points else {near}
            self.redraw()
        elif not alt:
            self._selected_points.clear()
            self._apply(lambda s: s.add(tools.point(x, y, s.width, s.height), self._drawing_class()))

    def _slide_path(self):
        """The slide's file (read from the store, so on the GUI thread)."""
        from palmares_desktop.core.slides.registry import slide_path

        return slide_path(self.session.store, self.session.slide)

    def _delete_selected(self) -> None:
        ids = self.selected_ids()
        self._selected_points.clear()
        self._apply(lambda s: s.delete(ids))

    def _apply(self, edit) -> None:
        """Run one session edit; a refusal is shown in words and the layers are redrawn either way."""
        if self.session is None:
            return
        try:
            edit(self.session)
        except PalmaresError as exc:
            self.note.setText(str(exc))
            self.message.emit(str(exc))
        else:
            self.note.clear()
            self.changed.emit()
        self.redraw()

    # ------------------------------------------------------------- display
    def set_class_visible(self, name: str, visible: bool) -> None:
        """Show or hide a class's annotations on screen (display only; nothing is stored)."""
        if self.legend.is_shown(name) != visible:
            self.legend.set_shown(name, visible)  # emits visibility_changed, which comes back here
            return
        self.redraw()

    def _edge_width(self) -> float:
        zoom = self.viewer.model.scene.camera.zoom or 1.0  # screen pixels per world unit (µm)
        return max(2.0 / zoom / max(self._scale[1], 1e-9), 0.5)  # two screen pixels, in level-0 pixels

    def _point_size(self) -> float:
        """A point's diameter in level-0 pixels: a nucleus (10 µm), but never under 10 screen pixels."""
        mpp = self.session.mpp[0] if self.session is not None else None
        return max(POINT_UM / mpp if mpp else 20.0, 10.0 * self.screen_px())

    def _on_zoom(self, event=None) -> None:
        self._zoom_timer.start()

    def _restyle(self) -> None:
        zoom = self.viewer.model.scene.camera.zoom
        if self.layer is None or (self._last_zoom and 0.75 < zoom / self._last_zoom < 1.33):
            return
        self.redraw(full=False)

    def redraw(self, full: bool = True) -> None:
        """Redraw the layers from the session; `full` (after an edit) also refreshes the legend and the
        TILs aid, which a zoom restyle or a move of a crowded slide's view does not change."""
        if self.layer is None or self.session is None:
            return
        keep = {self._index_ids[i] for i in self.layer.selected_data if i < len(self._index_ids)}
        if full or self._collected is None:
            self._collect()
        outlines, _, (points, point_ids, point_faces, point_edges) = self._collected
        shown = self._shapes_of(outlines, keep)
        data, ids, parts, edges, faces = self._shape_rows(shown)
        self._syncing = True
        try:
            mode = self.layer.mode
            self.layer.selected_data = set()
            self.layer.data = []
            if data:
                self.layer.add(
                    data,
                    shape_type="polygon",
                    edge_color=edges,
                    face_color=faces,
                    edge_width=self._edge_width(),
                )
            self.layer.mode = mode
            if mode in ("select", "direct") and keep:  # an edit keeps what was selected
                self.layer.selected_data = {i for i, a in enumerate(ids) if a in keep}
            self.points.current_size = self._point_size()
            if full or len(self.points.data) != len(points):
                self.points.selected_data = set()
                self.points.data = np.asarray(points, float).reshape(-1, 2)
            if points:
                self.points.size = self._point_size()
                self.points.face_color = np.asarray(point_faces)
                self.points.border_color = np.asarray(point_edges)
        finally:
            self._syncing = False
        self._index_ids, self._index_parts, self._point_ids = ids, parts, point_ids
        self._on_view = {o["id"] for o in shown}
        self._last_zoom = self.viewer.model.scene.camera.zoom
        self._update_buttons()
        self._picture_later()  # first: a crowded slide's summary waits for the picture
        if full:
            self._update_legend()

    @staticmethod
    def _shape_rows(objects: list[dict]) -> tuple[list, list, list, list, list]:
        """(vertices, annotation id, part, edge colour, face colour) of each napari polygon."""
        data, ids, parts, edges, faces = [], [], [], [], []
        for o in objects:
            rgb = np.asarray(o["color"] or (255, 255, 255), float) / 255
            for k, part in enumerate(_parts(o["geometry"])):
                data.append(part)
                ids.append(o["id"])
                parts.append(k)
                edges.append([*rgb, 1.0])
                faces.append([*rgb, 0.22])
        return data, ids, parts, edges, faces

    def _add_shapes(self, objects: list[dict]) -> None:
        """Append outlines that came into view to the Shapes layer (indices of the others unchanged)."""
        data, ids, parts, edges, faces = self._shape_rows(objects)
        if not data:
            return
        self._syncing = True
        try:
            self.layer.add(
                data, shape_type="polygon", edge_color=edges, face_color=faces, edge_width=self._edge_width()
            )
        finally:
            self._syncing = False
        self._index_ids = self._index_ids + ids
        self._index_parts = self._index_parts + parts
        self._on_view = self._on_view | set(ids)

    def _collect(self) -> None:
        """The shown (not hidden) outlines with their level-0 boxes, and the points' layer data, kept
        until the next full redraw (a view move of a crowded slide reuses them)."""
        hidden = self.legend.hidden()
        self._selected_points &= set(self.session.objects)
        points, point_ids, point_faces, point_edges = [], [], [], []
        outlines = []
        for o in self.session.objects.values():
            if (o["classification"] or UNCLASSIFIED) in hidden:
                continue
            if tools.is_point(o["geometry"]):
                rgb = np.asarray(o["color"] or (255, 255, 255), float) / 255
                for x, y in shapely.get_coordinates(o["geometry"]):
                    points.append((y, x))
                    point_ids.append(o["id"])
                    point_faces.append([*rgb, 1.0])
                    point_edges.append(
                        [1.0, 0.85, 0.0, 1.0] if o["id"] in self._selected_points else [1, 1, 1, 1]
                    )
                continue
            outlines.append(o)
        bounds = outline_bounds([o["geometry"] for o in outlines]) if outlines else np.zeros((0, 4))
        self._collected = (outlines, bounds, (points, point_ids, point_faces, point_edges))
        self._revision += 1

    # ------------------------------------------------- crowded slides, detections
    def crowded(self) -> bool:
        """More annotations than napari shapes can hold at interactive speed (see CROWDED)."""
        return self.session is not None and len(self.session.objects) > CROWDED

    def busy(self) -> bool:
        """Whether drawing or summarising is still going on in the background (or about to start)."""
        return (
            self._summary_pending
            or self._view_timer.isActive()
            or self._zoom_timer.isActive()
            or self._picture_running
            or self._picture_dirty
            or self._summary_running
            or self._detections_running
        )

    def _view_box(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """The level-0 box on screen, `margin` of its size added on each side, clipped to the slide."""
        x0, y0, x1, y1 = self.visible_box()
        mx, my = (x1 - x0) * margin, (y1 - y0) * margin
        w, h = (self.session.width, self.session.height) if self.session is not None else (x1, y1)
        return max(x0 - mx, 0.0), max(y0 - my, 0.0), min(x1 + mx, float(w)), min(y1 + my, float(h))

    @staticmethod
    def _in_box(objects: list[dict], box, bounds: np.ndarray | None = None) -> list[dict]:
        """The objects whose level-0 box meets `box` (`bounds`: their boxes, when known)."""
        if not objects:
            return []
        b = outline_bounds([o["geometry"] for o in objects]) if bounds is None else bounds
        inside = (b[:, 0] <= box[2]) & (b[:, 2] >= box[0]) & (b[:, 1] <= box[3]) & (b[:, 3] >= box[1])
        return [objects[i] for i in np.flatnonzero(inside)]

    def _shapes_of(self, outlines: list[dict], keep: set[str]) -> list[dict]:
        """The outlines to put on the Shapes layer: all of them, or on a crowded slide those in view
        (none but the selected when more than VIEW_SHAPES are in view: the picture shows them)."""
        if not self.crowded():
            self._say_crowded(0)
            return outlines
        bounds = self._collected[1] if self._collected and self._collected[0] is outlines else None
        in_view = self._in_box(outlines, self._view_box(PICTURE_MARGIN), bounds)
        if len(in_view) <= VIEW_SHAPES:
            self._say_crowded(0)
            return in_view
        self._say_crowded(len(self._in_box(in_view, self._view_box())))
        return [o for o in in_view if o["id"] in keep][:VIEW_SHAPES]

    def _say_crowded(self, n: int) -> None:
        if n > VIEW_SHAPES:
            self.note.setText(ZOOMED_OUT_NOTE.format(n=n, limit=VIEW_SHAPES))
            self._crowded_note = True
        elif self._crowded_note:
            self._crowded_note = False
            if self.note.text().endswith("select or edit them."):
                self.note.clear()

    def _on_view_moved(self, event=None) -> None:
        if self.session is not None and (self.crowded() or self.detections is not None):
            self._view_timer.start()

    def _view_changed(self) -> None:
        """After a pan or zoom: new shapes when the outlines in view changed, and a new picture."""
        if self.layer is None or self.session is None:
            return
        if self.crowded():
            if self._collected is None:
                self._collect()
            outlines = self._collected[0]
            keep = {self._index_ids[i] for i in self.layer.selected_data if i < len(self._index_ids)}
            zoom = self.viewer.model.scene.camera.zoom
            restyle = bool(self._last_zoom) and not 0.75 < zoom / self._last_zoom < 1.33
            wanted = self._shapes_of(outlines, keep)
            new = [o for o in wanted if o["id"] not in self._on_view]
            if restyle:
                self._zoom_timer.start()  # the shapes are rebuilt once the zooming pauses; the
            elif len(self._on_view) + len(new) > VIEW_SHAPES:  # picture shows the others meanwhile
                self.redraw(full=False)  # start again from the outlines in view
                return
            else:
                self._add_shapes(new)  # outlines that left the view may stay: drawn nowhere else
        self._picture_later()

    def _picture_later(self) -> None:
        """Draw the annotations not on the Shapes layer (crowded slide) and the detections as one
        picture of the view, in a worker; one at a time, the last view wins."""
        session = self.session
        if session is None or self.layer is None:
            return
        if not self.crowded() and self.detections is None:
            self.viewer.remove(PICTURE_LAYER)
            return
        if self._picture_running:
            self._picture_dirty = True
            return
        per_px = 1.0 / self.screen_px()  # screen pixels per level-0 pixel
        crowded = self.crowded()
        key = (self._revision, id(self.detections), crowded)
        if self._picture_covers(key, per_px):
            return  # the picture drawn last still covers the view, at about this zoom, rightly
        box = self._view_box(PICTURE_MARGIN)
        if box[2] <= box[0] or box[3] <= box[1]:
            return
        size = tuple(max(1, min(int(round(d * per_px)), 4096)) for d in (box[2] - box[0], box[3] - box[1]))
        outlines, drawn = [], set()
        if crowded:
            if self._collected is None:
                self._collect()
            shown, bounds = self._collected[:2]
            rest = [o for o in self._in_box(shown, box, bounds) if o["id"] not in self._on_view]
            outlines = [(o["geometry"], o["color"] or (255, 255, 255)) for o in rest]
            drawn = {o["id"] for o in rest}
        found = self.detections
        if draw_calls(box, size, outlines, found) <= PICTURE_AT_ONCE:
            self._show_picture(render_objects(box, size, outlines, found), box)
            self._picture_key = (key, box, per_px, drawn)
            return
        self._picture_running = True

        def done(rgba) -> None:
            self._picture_running = False
            if self.session is session and self.layer is not None:
                self._show_picture(rgba, box)
                self._picture_key = (key, box, per_px, drawn)
            if self._picture_dirty:
                self._picture_dirty = False
                self._picture_later()
            self._summary_if_pending(session)

        def failed(exc) -> None:
            self._picture_running = self._picture_dirty = False
            log.warning("the objects picture failed: %s", exc)
            self._summary_if_pending(session)

        self.workers.start(
            lambda: render_objects(box, size, outlines, found),
            on_success=done,
            on_failure=failed,
            name="objects picture",
        )

    def _picture_covers(self, key, per_px: float) -> bool:
        """Whether the picture on screen shows the same objects, at about this zoom, around the view."""
        if self._picture_key is None or self.viewer.layer(PICTURE_LAYER) is None:
            return False
        drawn_key, box, drawn_per_px, drawn = self._picture_key
        if drawn_key != key or not 0.8 < per_px / drawn_per_px < 1.25:
            return False
        view = self._view_box()
        if not (box[0] <= view[0] and box[1] <= view[1] and view[2] <= box[2] and view[3] <= box[3]):
            return False
        if not key[2] or self._collected is None:
            return True
        # Each outline in view must be drawn once: on the Shapes layer or in the picture, not both.
        shown, bounds = self._collected[:2]
        return all(
            (o["id"] in self._on_view) != (o["id"] in drawn) for o in self._in_box(shown, view, bounds)
        )

    def _show_picture(self, rgba: np.ndarray, box) -> None:
        sy, sx = self._scale
        x0, y0, x1, y1 = box
        h, w = rgba.shape[:2]
        scale, translate = ((y1 - y0) / h * sy, (x1 - x0) / w * sx), (y0 * sy, x0 * sx)
        layer = self.viewer.layer(PICTURE_LAYER)
        if layer is None:
            model = self.viewer.model
            active = model.layers.selection.active
            layer = model.add_image(
                rgba,
                name=PICTURE_LAYER,
                rgb=True,
                scale=scale,
                translate=translate,
                blending="translucent_no_depth",
                units=self.viewer.world_units(),
            )
            model.layers.move(model.layers.index(layer), 1)  # over the slide, under the shapes and points
            model.layers.selection.active = active
        else:
            # One refresh for the three changes, and no thumbnail (no layer list shows it): napari
            # refreshes at each of them otherwise, ~20 ms a pan step.
            with layer._block_refresh():
                if not np.allclose(layer.scale, scale):
                    layer.scale = scale
                layer.translate = translate
                layer.data = rgba
            layer.refresh(thumbnail=False)

    def _load_detections(self) -> None:
        """Read the slide's stored detections in a worker (their own read-only store connection)."""
        from palmares_desktop.core.store.slide_objects import detection_runs_of

        session = self.session
        if session is None or not detection_runs_of(session.store, session.slide.id):
            return
        root, slide = session.store.root, session.slide

        def work():
            from palmares_desktop.core.slides import analysis
            from palmares_desktop.core.store import Store

            store = Store.open(root, create=False, read_only=True)
            try:
                return analysis.detections(store, slide)
            finally:
                store.close()

        def done(found) -> None:
            self._detections_running = False
            if self.session is session:
                self.detections = found if len(found) else None
                self._picture_later()
            self._summary_if_pending(session)

        def failed(exc) -> None:
            self._detections_running = False
            if self.session is session:
                self.note.setText(f"The slide's detections could not be read: {exc}")
            self._summary_if_pending(session)

        self._detections_running = True
        self.workers.start(work, on_success=done, on_failure=failed, name="detections")

    def _summary_if_pending(self, session) -> None:
        if not self._summary_pending:
            return
        if self.session is not session or self.session is None:
            self._summary_pending = False
        elif not (self._detections_running or self._picture_running):
            self._summarise_later()

    def _summarise_later(self) -> None:
        """A crowded slide's class areas and TILs aid, worked out in a worker from a snapshot (after
        the detections are read and drawn: what is on screen comes first)."""
        session = self.session
        if self._detections_running or self._picture_running:
            self._summary_pending = True
            return
        self._summary_pending = False
        snapshot = copy.copy(session)
        snapshot.objects = dict(session.objects)  # edits replace object dicts, never change them
        root, slide = session.store.root, session.slide
        self._summary_generation += 1
        generation = self._summary_generation

        def work():
            from palmares_desktop.core.slides import analysis
            from palmares_desktop.core.store import Store

            summary = snapshot.class_summary()
            store = Store.open(root, create=False, read_only=True)
            try:
                tils: Any = analysis.tils(store, slide, None, save=False)
            except PalmaresError as exc:
                tils = exc
            except shapely.errors.GEOSException:
                log.exception("stromal TILs aid failed in GEOS")
                tils = None
            finally:
                store.close()
            return summary, tils

        def done(result) -> None:
            if generation != self._summary_generation:
                return  # a newer summary is on its way
            self._summary_running = False
            if self.session is session:
                self.legend.show_summary(result[0])
                self._show_tils(result[1])

        def failed(exc) -> None:
            if generation == self._summary_generation:
                self._summary_running = False
            log.warning("class summary failed: %s", exc)

        self._summary_running = True
        self.workers.start(work, on_success=done, on_failure=failed, name="class summary")

    def _update_buttons(self) -> None:
        s = self.session
        self.undo_button.setEnabled(bool(s and s.can_undo))
        self.redo_button.setEnabled(bool(s and s.can_redo))

    def _update_legend(self) -> None:
        if self.crowded():
            self._summarise_later()
            return
        self.legend.show_summary(self.session.class_summary() if self.session is not None else {})
        self.refresh_tils()

    # ----------------------------------------------------------------- TILs
    def refresh_tils(self) -> dict | None:
        from palmares_desktop.core.slides import analysis

        if self.session is None:
            return None
        try:
            panel = analysis.tils(self.session.store, self.session.slide, None)
        except PalmaresError as exc:
            self._show_tils(exc)
            return None
        except shapely.errors.GEOSException:  # outlines meeting only along edges (core/slides/tils.py)
            log.exception("stromal TILs aid failed in GEOS")
            self._show_tils(None)
            return None
        self._show_tils(panel)
        return panel

    def _show_tils(self, panel) -> None:
        """The TILs box for a tils() panel, a refusal (PalmaresError) or None (GEOS failed)."""
        if isinstance(panel, PalmaresError):
            self.tils_text.setText(str(panel))
            self.tils_store.setEnabled(False)
            return
        if panel is None:
            self.tils_text.setText(TILS_GEOMETRY_FAILED)
            self.tils_store.setEnabled(False)
            return
        aid = panel["aid"]
        text = (
            f"Stroma {aid['stromal_area_mm2']:.3f} mm² ({aid['border_from']}); lymphocytic infiltrate covers "
            f"<b>{aid['annotation_percent']:.1f}%</b> (shown as <b>{aid['annotation_percent_rounded']}%</b>)."
        )
        if aid["small_round_nuclei"] is not None:
            text += (
                f"<br>Aid: {aid['small_round_nuclei']} small round nuclei in stroma, "
                f"{aid['small_round_density_per_mm2']:.0f}/mm²."
            )
        self.tils_text.setText(text)
        self.tils_store.setEnabled(True)

    def _store_tils(self) -> None:
        from palmares_desktop.core.slides import analysis

        if self.session is None:
            return
        try:
            analysis.tils(self.session.store, self.session.slide, float(self.tils_score.value()))
        except PalmaresError as exc:
            self.note.setText(str(exc))
            return
        except shapely.errors.GEOSException:
            log.exception("stromal TILs score not stored: GEOS failed")
            self.note.setText(TILS_GEOMETRY_FAILED)
            return
        self.note.setText(f"Stored your stromal TILs score: {self.tils_score.value():.0f}%.")

    def add_tissue(self, geometry: Any) -> None:
        """Add a tissue outline found in the background (saved on this, the GUI, thread)."""
        self._apply(lambda s: s.add(geometry, None, name="Tissue"))

"""The slide room's annotation side panel: class, tools, undo/redo, class legend with areas, TILs.

The panel only wires intent to core: shapes the pathologist draws on a napari Shapes layer are
turned into outlines by core.slides.annotation_session tools, added to the session (which stores
them at once), and the layer is redrawn from the session. Shapes are drawn in level-0 pixel
coordinates (the layer has the slide layer's µm scale), with outline widths kept at about two
screen pixels whatever the zoom. The TILs box shows core.slides.analysis.tils and stores only the
pathologist's score.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.slides import annotation_session as tools
from palmares_desktop.core.slides.annotation_session import AnnotationSession
from palmares_desktop.core.slides.annotations import study_classes

log = logging.getLogger(__name__)
ANNOTATION_LAYER = "Annotations"
#: tool button -> napari Shapes mode
MODES = {
    "Pan": "pan_zoom",
    "Select": "select",
    "Polygon": "add_polygon",
    "Rectangle": "add_rectangle",
    "Ellipse": "add_ellipse",
    "Freehand": "add_polygon_lasso",
    "Brush": "add_path",
}


def _swatch(rgb) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


def _parts(geometry) -> list[np.ndarray]:
    """(row, column) exteriors of each polygon part, for napari (holes are not drawn)."""
    polys = getattr(geometry, "geoms", [geometry])
    return [np.asarray(p.exterior.coords)[:-1, ::-1] for p in polys if p.geom_type == "Polygon"]


class AnnotationPanel(QWidget):
    changed = Signal()  # the annotations changed (stored)
    message = Signal(str)  # a refusal or a note, in words

    def __init__(self, viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer  # gui.napari_adapter.EmbeddedViewer
        self.session: AnnotationSession | None = None
        self.layer = None
        self._index_ids: list[str] = []  # napari shape index -> annotation id
        self._syncing = False
        self._removing: list[str] = []
        self._scale = (1.0, 1.0)
        self._zoom_timer = QTimer(self, singleShot=True, interval=150)
        self._zoom_timer.timeout.connect(self._restyle)
        self._last_zoom = None

        self.classes = study_classes()
        self.class_box = QComboBox()
        for c in self.classes:
            self.class_box.addItem(_swatch(c["colour"]), c["name"])
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        grid = QGridLayout()
        for n, name in enumerate(MODES):
            button = QPushButton(name)
            button.setCheckable(True)
            button.setObjectName(f"tool-{name.lower()}")
            self.tool_group.addButton(button, n)
            grid.addWidget(button, n // 3, n % 3)
        self.tool_group.buttons()[0].setChecked(True)
        self.tool_group.idClicked.connect(self._tool_chosen)
        self.brush_um = QDoubleSpinBox(minimum=1.0, maximum=5000.0, value=50.0, suffix=" µm", decimals=0)
        self.undo_button, self.redo_button = QPushButton("Undo"), QPushButton("Redo")
        self.delete_button, self.merge_button = QPushButton("Delete"), QPushButton("Merge")
        self.undo_button.clicked.connect(lambda: self._apply(lambda s: s.undo()))
        self.redo_button.clicked.connect(lambda: self._apply(lambda s: s.redo()))
        self.delete_button.clicked.connect(lambda: self._apply(lambda s: s.delete(self.selected_ids())))
        self.merge_button.clicked.connect(lambda: self._apply(lambda s: s.merge(self.selected_ids())))
        edits = QHBoxLayout()
        for b in (self.undo_button, self.redo_button, self.delete_button, self.merge_button):
            edits.addWidget(b)

        draw = QGroupBox("Annotate")
        form = QFormLayout(draw)
        form.addRow("Class", self.class_box)
        form.addRow(grid)
        form.addRow("Brush size", self.brush_um)
        form.addRow(edits)

        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        legend_box = QGroupBox("Classes and areas")
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
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        for widget in (draw, legend_box, tils_box, self.note):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.setEnabled(False)
        self._update_buttons()

    # -------------------------------------------------------------- binding
    def bind(self, store, slide: dict, scale: tuple[float, float]) -> None:
        """Show and edit the annotations of `slide` (its layer drawn at `scale` µm per pixel (y, x))."""
        self.session = AnnotationSession(store, slide)
        self._scale = scale
        self.viewer.remove(ANNOTATION_LAYER)
        self.layer = self.viewer.model.add_shapes(
            name=ANNOTATION_LAYER, scale=scale, ndim=2, edge_width=2.0, opacity=1.0
        )
        self.layer.events.data.connect(self._on_data)
        self.viewer.model.camera.events.zoom.connect(self._on_zoom)
        self.setEnabled(True)
        self.redraw()
        self._tool_chosen(self.tool_group.checkedId())

    def unbind(self) -> None:
        if self.layer is not None:
            with contextlib.suppress(TypeError, RuntimeError, ValueError):
                self.viewer.model.camera.events.zoom.disconnect(self._on_zoom)
        self.session, self.layer, self._index_ids = None, None, []
        self.setEnabled(False)

    def selected_ids(self) -> list[str]:
        if self.layer is None:
            return []
        return sorted({self._index_ids[i] for i in self.layer.selected_data if i < len(self._index_ids)})

    # ------------------------------------------------------------- drawing
    def _tool_chosen(self, index: int) -> None:
        if self.layer is None:
            return
        name = list(MODES)[index]
        self.layer.mode = MODES[name]
        self.viewer.model.layers.selection.active = self.layer

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
            self._apply(lambda s: self._add_drawn(s, index))
        elif action.endswith("CHANGED") or action == "changed":
            indices = [i for i in (getattr(event, "data_indices", ()) or ()) if 0 <= i < len(self._index_ids)]
            for i in indices:
                self._apply(lambda s, i=i: s.reshape(self._index_ids[i], self._drawn_geometry(i)))

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
        session.add(self._drawn_geometry(index), self.class_box.currentText())

    def _apply(self, edit) -> None:
        """Run one session edit; a refusal is shown in words and the layer is redrawn either way."""
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
    def _edge_width(self) -> float:
        zoom = self.viewer.model.camera.zoom or 1.0  # screen pixels per world unit (µm)
        return max(2.0 / zoom / max(self._scale[1], 1e-9), 0.5)  # two screen pixels, in level-0 pixels

    def _on_zoom(self, event=None) -> None:
        self._zoom_timer.start()

    def _restyle(self) -> None:
        zoom = self.viewer.model.camera.zoom
        if self.layer is None or (self._last_zoom and 0.75 < zoom / self._last_zoom < 1.33):
            return
        self.redraw()

    def redraw(self) -> None:
        if self.layer is None or self.session is None:
            return
        data, ids, edges, faces = [], [], [], []
        for o in self.session.objects.values():
            rgb = np.asarray(o["color"] or (255, 255, 255), float) / 255
            for part in _parts(o["geometry"]):
                data.append(part)
                ids.append(o["id"])
                edges.append([*rgb, 1.0])
                faces.append([*rgb, 0.22])
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
        finally:
            self._syncing = False
        self._index_ids = ids
        self._last_zoom = self.viewer.model.camera.zoom
        self._update_buttons()
        self._update_legend()

    def _update_buttons(self) -> None:
        s = self.session
        self.undo_button.setEnabled(bool(s and s.can_undo))
        self.redo_button.setEnabled(bool(s and s.can_redo))

    def _update_legend(self) -> None:
        if self.session is None:
            self.legend.clear()
            return
        try:
            areas = self.session.class_areas_mm2()
            unit = "mm²"
        except PalmaresError:
            areas, unit = {}, ""
        counts: dict[str, int] = {}
        for o in self.session.objects.values():
            counts[o["classification"] or "Unclassified"] = (
                counts.get(o["classification"] or "Unclassified", 0) + 1
            )
        rows = []
        for c in [*self.classes, {"name": "Unclassified", "colour": (255, 255, 255)}]:
            name = c["name"]
            r, g, b = c["colour"]
            area = f"{areas[name]:.3f} {unit}" if name in areas else ("—" if name not in counts else "no MPP")
            n = counts.get(name, 0)
            if name == "Unclassified" and not n:
                continue
            rows.append(
                f'<tr><td><span style="background-color: rgb({r},{g},{b});">&nbsp;&nbsp;&nbsp;&nbsp;</span></td>'
                f"<td>{name}</td><td align='right'>{n}</td><td align='right'>{area}</td></tr>"
            )
        self.legend.setText("<table cellspacing='3'>" + "".join(rows) + "</table>")
        self.refresh_tils()

    # ----------------------------------------------------------------- TILs
    def refresh_tils(self) -> dict | None:
        from palmares_desktop.core.slides import analysis

        if self.session is None:
            return None
        try:
            panel = analysis.tils(self.session.store, self.session.slide, None)
        except PalmaresError as exc:
            self.tils_text.setText(str(exc))
            self.tils_store.setEnabled(False)
            return None
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
        return panel

    def _store_tils(self) -> None:
        from palmares_desktop.core.slides import analysis

        if self.session is None:
            return
        try:
            analysis.tils(self.session.store, self.session.slide, float(self.tils_score.value()))
        except PalmaresError as exc:
            self.note.setText(str(exc))
            return
        self.note.setText(f"Stored your stromal TILs score: {self.tils_score.value():.0f}%.")

    def add_tissue(self, geometry: Any) -> None:
        """Add a tissue outline found in the background (saved on this, the GUI, thread)."""
        self._apply(lambda s: s.add(geometry, None, name="Tissue"))

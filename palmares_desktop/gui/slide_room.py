"""The slide room: the subject's H&E slide as a lazy multiscale RGB layer with a µm scale bar, and
the annotation panel (classes, drawing tools, undo/redo, class areas, stromal TILs).

Level arrays come from core.slides (tile-backed, lazy): napari reads only the tiles of the level
that matches the zoom, so a 20k × 20k level 0 is never loaded whole. "Detect tissue" runs
core.slides.tissue in a worker and adds the outline as an editable annotation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from palmares_desktop.core.model import Slide, Subject
from palmares_desktop.core.slides.reader import level_array, open_slide
from palmares_desktop.core.slides.registry import slide_path
from palmares_desktop.core.store import Store, StoreError
from palmares_desktop.gui.napari_adapter import SLIDE_LAYER, EmbeddedViewer
from palmares_desktop.gui.slide_annotation_panel import AnnotationPanel
from palmares_desktop.gui.workers import WorkerPool

log = logging.getLogger(__name__)


def open_slide_levels(path: Path) -> tuple[list[Any], tuple[float, float], dict]:
    """(lazy level arrays level 0 first, (mpp_y, mpp_x), info) from core.slides. Worker-safe."""
    slide = open_slide(path)
    levels = [level_array(path, i) for i in range(len(slide.levels))]
    _warm_units()
    if slide.mpp_x and slide.mpp_y:
        mpp, calibrated = (float(slide.mpp_y), float(slide.mpp_x)), True
    else:  # no trustworthy pixel size: show pixels, and say so (no µm scale bar)
        mpp, calibrated = (1.0, 1.0), False
    info = {**slide.to_dict(), "calibrated": calibrated}
    return levels, mpp, info


def _warm_units() -> None:
    """Build pint's unit registry here, in the worker: napari builds it (~0.6 s) on the GUI thread the
    first time a layer has units, which would delay the first overview."""
    try:
        from napari.utils._units import get_unit_registry

        get_unit_registry().Unit("um")
    except Exception:  # noqa: BLE001 - only a warm-up: napari builds it again if this failed
        log.debug("unit registry warm-up failed", exc_info=True)


def warm_up_slide_reading() -> None:
    """What the session's first slide would otherwise wait for (~0.45 s on a 2-core PC): zarr's
    import and pint's unit registry. Run in a worker a moment after the window opens."""
    import zarr  # noqa: F401 - the import is the point

    _warm_units()


#: When the slide reading is warmed up after start (the window and worklist come first).
WARM_UP_AFTER_MS = 1500


class SlideRoom(QWidget):
    slide_loaded = Signal(str)
    load_failed = Signal(str)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.viewer = EmbeddedViewer("Slide")
        self.viewer.set_background("#5b5b5b")  # mid grey: the white glass stands out, as in slide viewers
        self.store: Store | None = None
        self.slides: list[Slide] = []
        self.info: dict | None = None
        self._generation = 0
        self._subject_code = self._real_code = ""
        self._fit_pending = False
        self._unshown: tuple | None = None  # a slide read while the room was hidden (see _show)
        QTimer.singleShot(WARM_UP_AFTER_MS, self._warm_up)

        self.title = QLabel("No subject open.")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        self.picker = QComboBox()
        self.picker.currentIndexChanged.connect(self._load_selected)
        self.picker.setVisible(False)
        self.details = QLabel()
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.panel = AnnotationPanel(self.viewer, workers=workers)
        self.panel.setFixedWidth(330)
        self.tissue_button = QPushButton("Detect tissue")
        self.tissue_button.setEnabled(False)
        self.tissue_button.clicked.connect(self._detect_tissue)
        self._path: Path | None = None

        top = QHBoxLayout()
        top.setContentsMargins(6, 0, 6, 0)  # the texts must not touch the window's edges
        top.addWidget(self.title)
        top.addWidget(self.picker)
        top.addStretch(1)
        top.addWidget(self.details)
        top.addWidget(self.tissue_button)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.viewer.widget, 1)
        body.addWidget(self.panel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(top)
        layout.addLayout(body, 1)

    def _warm_up(self) -> None:
        # Only in an open window that has opened no slide yet (a slide warms up by itself).
        if self._generation == 0 and self.window().isVisible():
            self.workers.start(warm_up_slide_reading, name="slide reading warm-up")

    def load_subject(self, store: Store, subject: Subject) -> None:
        self.store = store
        from palmares_desktop.core.store.records import slides_of_subject

        self.slides = slides_of_subject(store, subject.id)
        self._clear_viewer()
        self.info = None
        self.details.clear()
        self._subject_code = subject.label  # a blinded case: its label
        self._real_code = subject.code
        self.picker.blockSignals(True)
        self.picker.clear()
        for row in self.slides:
            self.picker.addItem(self._name(row))  # blind: subject code + stain, never the file name
        self.picker.blockSignals(False)
        self.picker.setVisible(len(self.slides) > 1)
        if not self.slides:
            self._generation += 1
            self.panel.unbind()
            self.title.setText(f"{self._subject_code} — no slide in the store for this subject.")
            return
        self._load_selected(0)

    def _load_selected(self, index: int) -> None:
        if not (0 <= index < len(self.slides)) or self.store is None:
            return
        self._generation += 1
        generation = self._generation
        row = self.slides[index]
        name = self._name(row)
        try:
            path = slide_path(self.store, row)
        except StoreError as exc:
            self._failed(name, exc, generation)
            return
        self.title.setText(f"{self._heading(name)} — opening…")
        self.panel.unbind()
        self._clear_viewer()
        self.workers.start(
            lambda: open_slide_levels(path),
            on_success=lambda result: self._show(result, row, path, generation),
            on_failure=lambda exc: self._failed(name, exc, generation),
            name=f"slide {name}",
        )

    def _clear_viewer(self) -> None:
        """Remove the layers; nothing to do when there are none (napari collects garbage at every
        clear, ~0.3 s with a big heap, and a subject opens through two clears)."""
        if len(self.viewer.layers):
            self.viewer.clear()

    def _failed(self, name: str, exc: Exception, generation: int) -> None:
        if generation != self._generation:
            return
        message = f"The slide {name} could not be opened: {exc}"
        self.title.setText(f"{self._subject_code} — slide not available")
        self.details.setText(message)
        self.load_failed.emit(message)

    def _show(
        self, result: tuple[list[Any], tuple[float, float], dict], row: Slide, path: Path, generation: int
    ) -> None:
        if generation != self._generation:
            return
        if not self.isVisible():
            # Its layers, objects and legend (~0.7 s on the GUI thread) wait until the room is shown:
            # a radiologist opening a subject sees the CT/PET room, which must not wait for them.
            self._unshown = (result, row, path, generation)
            return
        self._unshown = None
        name = self._name(row)
        levels, mpp, info = result
        self.info = info
        units = ("um", "um") if info["calibrated"] else ("pixel", "pixel")
        self.viewer.add_slide(levels, mpp, units=units)
        self.viewer.show_scale_bar(info["calibrated"])
        self._fit_view()
        self._path = path
        self.title.setText(self._heading(name))
        pixel = f"{mpp[1]:.3f} µm/px" if info["calibrated"] else "pixel size unknown (no µm scale)"
        self.details.setText(
            f"{info['width']} × {info['height']} px, {len(levels)} levels, {pixel}, {info['format'].upper()}"
        )
        # The tissue is painted first; the annotations follow (a crowded slide's take ~0.2 s, and
        # its detections are read meanwhile).
        self.viewer.after_next_paint(lambda: self._bind(row, mpp, name, generation))

    def _bind(self, row: Slide, mpp: tuple[float, float], name: str, generation: int) -> None:
        if generation != self._generation:
            return  # another slide or subject was opened meanwhile
        if self.store is not None:
            self.panel.bind(self.store, row, mpp)
        self.tissue_button.setEnabled(True)
        self.slide_loaded.emit(name)

    def _name(self, row: Slide) -> str:
        """The slide's display name (subject code + stain), with a blinded case's label for the code."""
        name = row.display_name or ""
        return name.replace(self._real_code, self._subject_code) if self._real_code else name

    def _heading(self, name: str) -> str:
        """'IT03-0001 — slide.svs', or just the name when it already starts with the subject code."""
        return name if name.startswith(self._subject_code) else f"{self._subject_code} — {name}"

    def _fit_view(self) -> None:
        # A hidden tab's canvas has no real size yet: fit now, and again when the tab is first shown.
        self.viewer.reset_view()
        self._fit_pending = not self.isVisible()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._unshown is not None:
            unshown, self._unshown = self._unshown, None
            QTimer.singleShot(0, lambda: self._show(*unshown))
        if self._fit_pending:
            self._fit_pending = False
            QTimer.singleShot(0, self.viewer.reset_view)

    def slide_layer(self):
        return self.viewer.layer(SLIDE_LAYER)

    def _detect_tissue(self) -> None:
        """Find the tissue outline off the GUI thread; the panel saves it (on this thread)."""
        if self._path is None:
            return
        from palmares_desktop.core.slides.tissue import detect_tissue

        path, generation = self._path, self._generation
        self.tissue_button.setEnabled(False)
        self.tissue_button.setText("Detecting…")

        def done(found) -> None:
            self.tissue_button.setText("Detect tissue")
            self.tissue_button.setEnabled(True)
            if generation == self._generation and not found.geometry.is_empty:
                self.panel.add_tissue(found.geometry)

        def failed(exc) -> None:
            self.tissue_button.setText("Detect tissue")
            self.tissue_button.setEnabled(True)
            self.panel.note.setText(f"Tissue detection failed: {exc}")

        self.workers.start(
            lambda: detect_tissue(path, open_slide(path)), on_success=done, on_failure=failed, name="tissue"
        )

    def reset(self) -> None:
        """Forget the subject (e.g. another store was opened)."""
        self._generation += 1
        self.panel.unbind()
        self._clear_viewer()
        self.slides, self.info, self.store = [], None, None
        self.picker.clear()
        self.picker.setVisible(False)
        self.title.setText("No subject open.")
        self.details.clear()

    def close_viewer(self) -> None:
        self._generation += 1
        self.viewer.close()

"""The CT/PET room's CT tools and clean-up: each one core call, the same the commands run.

- **HU range** (`palmares ct threshold`): the CT voxels between two HU values in a box around the
  click, keeping the part connected to the clicked voxel; **Region grow** (`palmares ct grow`): the
  voxels connected to the click within ± a tolerance of its neighbourhood's mean HU, up to a radius.
  Both optionally smooth the CT first (Gaussian, mm) and save a final CT version by the reader.
- **Clean-up** (`palmares segmentation clean`) of the selected segmentation's lesion on its own
  series: fill holes, remove islands, grow or shrink by mm, interpolate between drawn slices, and
  the union with, intersection with or subtraction of another lesion's mask on the same series
  (the lesions core's `combinable_lesions` lists; core refuses another grid or an empty result).
Every job runs in a worker on its own store connection; the room reloads and selects the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

CLEANUPS = (
    ("Fill holes", "fill-holes"),
    ("Remove islands", "remove-islands"),
    ("Grow by mm", "grow"),
    ("Shrink by mm", "shrink"),
    ("Interpolate slices", "interpolate"),
    ("Union with", "union"),
    ("Intersect with", "intersect"),
    ("Subtract", "subtract"),
)
COMBINE = ("union", "intersect", "subtract")  # the clean-ups that name another lesion


def _spin(low: float, high: float, value: float, suffix: str, step: float = 1.0) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(1)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin


class _OtherLesions(QComboBox):
    """The other lesion of a union / intersect / subtract; its list is refreshed when it opens."""

    about_to_open = Signal()

    def showPopup(self) -> None:  # noqa: N802 - Qt API
        self.about_to_open.emit()
        super().showPopup()


class CtTools(QGroupBox):
    saved = Signal(dict)  # core's version_report of what was stored

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__("CT tools", parent)
        self.workers = workers
        self._context: Callable[[], tuple[Any, str, dict | None] | None] = lambda: None
        self.mode = QComboBox()
        self.mode.addItem("HU range in a box", "range")
        self.mode.addItem("Region grow from the click", "grow")
        self.low, self.high = _spin(-1024, 3000, -100, " HU", 10), _spin(-1024, 3000, 200, " HU", 10)
        self.tolerance = _spin(1, 500, 20, " HU")
        self.size_mm = _spin(5, 300, 60, " mm", 5)
        self.size_mm.setToolTip("Box edge (HU range) or largest radius (region grow)")
        self.smooth_mm = _spin(0, 5, 1.0, " mm", 0.5)
        self.smooth_mm.setToolTip("Smooth the CT first (Gaussian SD); the HU numbers are of the original CT")
        self.lesion = QLineEdit()
        self.lesion.setPlaceholderText("new lesion (CT lesion N)")
        self.arm = QPushButton("Click a lesion…")
        self.arm.setCheckable(True)
        self.cleanup = QComboBox()
        for text, value in CLEANUPS:
            self.cleanup.addItem(text, value)
        self.cleanup_mm = _spin(0.5, 50, 2, " mm", 0.5)
        self.other = _OtherLesions()  # in the mm box's place for union / intersect / subtract
        self.other.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.other.setMinimumContentsLength(5)
        self.other.setToolTip("The other lesion (its outline on the same series)")
        self.other.about_to_open.connect(self.refresh_others)
        self.other.setVisible(False)
        self.cleanup.currentIndexChanged.connect(self._cleanup_changed)
        self.apply_cleanup = QPushButton("Apply to selected")
        self.apply_cleanup.setToolTip(
            "Clean up the lesion selected in the segmentations list (its next version)"
        )
        self.apply_cleanup.clicked.connect(self.clean_selected)
        self.message = QLabel("Choose a tool, press Click a lesion… and click in the CT.")
        self.message.setWordWrap(True)
        hu = QHBoxLayout()
        hu.addWidget(self.low)
        hu.addWidget(QLabel("to"))
        hu.addWidget(self.high)
        clean = QHBoxLayout()
        clean.addWidget(self.cleanup, 1)
        clean.addWidget(self.cleanup_mm)
        clean.addWidget(self.other, 1)
        clean.addWidget(self.apply_cleanup)
        form = QFormLayout(self)
        form.addRow("Tool", self.mode)
        form.addRow("HU range", hu)
        form.addRow("Tolerance", self.tolerance)
        form.addRow("Box / radius", self.size_mm)
        form.addRow("Smoothing", self.smooth_mm)
        form.addRow("Lesion", self.lesion)
        form.addRow(self.arm)
        form.addRow("Clean-up", clean)
        form.addRow(self.message)

    def bind(self, context: Callable[[], tuple[Any, str, dict | None] | None]) -> None:
        """`context()` gives (store, subject code, selected segmentation row or None), or None."""
        self._context = context

    def _ready(self):
        context = self._context()
        if context is None:
            self.message.setText("Open a subject with a CT first.")
            return None
        if context[0].reader is None:
            self.message.setText(
                "Choose a reader first (Reader → Switch reader…): every outline has an author."
            )
            return None
        return context

    def _cleanup_changed(self) -> None:
        combine = self.cleanup.currentData() in COMBINE
        self.cleanup_mm.setVisible(not combine)
        self.other.setVisible(combine)
        if combine:
            self.refresh_others()

    def refresh_others(self) -> None:
        """List the lesions the selected one may be combined with (core's `combinable_lesions`: the
        subject's other lesions with an outline on the selected segmentation's series)."""
        from palmares_desktop.core.segmentation.lesion_cleanup import combinable_lesions

        context = self._context()
        segmentation = context[2] if context else None
        names = (
            combinable_lesions(context[0], context[1], segmentation.lesion_name, segmentation.series_id)
            if segmentation
            else []
        )
        current = self.other.currentText()
        self.other.blockSignals(True)
        self.other.clear()
        self.other.addItems(names)
        if current in names:
            self.other.setCurrentText(current)
        self.other.blockSignals(False)
        self.other.setEnabled(bool(names))
        self.other.setToolTip(self.other.currentText() or "No other lesion has an outline on this series")

    def on_press(self, _viewer, event) -> None:
        """napari mouse callback: a left click while armed runs the chosen tool at that point."""
        if getattr(event, "button", 1) == 1 and self.arm.isChecked():
            self.arm.setChecked(False)
            self.run_at(tuple(event.position)[-3:])

    def run_at(self, world_zyx: Sequence[float]) -> None:
        context = self._ready()
        if context is None:
            return
        store, code, _ = context
        at = tuple(float(v) for v in reversed(world_zyx))  # (z, y, x) world -> (x, y, z) LPS
        mode, name = self.mode.currentData(), self.lesion.text().strip() or None
        low, high, tolerance = self.low.value(), self.high.value(), self.tolerance.value()
        size, smooth = self.size_mm.value(), self.smooth_mm.value()
        root, reader = store.root, store.reader

        def job() -> dict:
            from palmares_desktop.core.ct import subject_ct

            with worker_store(root, reader) as worker:
                if mode == "range":
                    saved, result = subject_ct.ct_threshold_lesion(
                        worker, code, at, low, high, size, "box", at, name, smooth_mm=smooth
                    )
                else:
                    saved, result = subject_ct.ct_grow_lesion(
                        worker, code, at, tolerance, size, name, smooth_mm=smooth
                    )
                return subject_ct.ct_report(worker, code, saved, result)

        self.message.setText(f"Segmenting the CT at ({at[0]:.0f}, {at[1]:.0f}, {at[2]:.0f}) mm…")
        self.workers.start(job, on_success=self._done, on_failure=self._failed, name="ct tool")

    def clean_selected(self) -> None:
        context = self._ready()
        if context is None:
            return
        store, code, segmentation = context
        if segmentation is None:
            self.message.setText("Select a segmentation in the list first.")
            return
        operation, mm = self.cleanup.currentData(), self.cleanup_mm.value()
        lesion, series_id = segmentation.lesion_name, segmentation.series_id
        if operation in COMBINE:
            self.refresh_others()  # the selection may have changed since the list was made
        other = (self.other.currentText() or None) if operation in COMBINE else None
        modality = "pet" if segmentation.series_modality == "PT" else "ct"
        root, reader = store.root, store.reader

        def job() -> dict:
            from palmares_desktop.core.segmentation.lesion_cleanup import (
                clean_lesion,
                clean_report,
                cleanup_sentence,
            )

            with worker_store(root, reader) as worker:
                saved, result = clean_lesion(
                    worker, code, lesion, modality, operation,
                    mm=mm if operation in ("grow", "shrink") else None, other_lesion=other,
                    series_id=series_id,
                )  # fmt: skip
                report = clean_report(worker, code, saved, result)
                return {**report, "sentence": cleanup_sentence(worker, report)}

        with_other = f" {other}" if other else ""
        self.message.setText(f"{self.cleanup.currentText()}{with_other} on {lesion}…")
        self.workers.start(job, on_success=self._done, on_failure=self._failed, name="clean-up")

    def _done(self, report: dict) -> None:
        from palmares_desktop.core.ct.subject_ct import ct_lines

        self.message.setText(report.get("sentence") or " ".join(ct_lines(report)))
        self.saved.emit(report)

    def _failed(self, exc: Exception) -> None:
        self.message.setText(str(exc))

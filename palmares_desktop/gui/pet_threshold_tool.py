"""The CT/PET room's PET threshold tool: the reader picks a rule, clicks a lesion, and core's
`threshold_lesion` (the same call as `palmares pet threshold`) saves a final PET segmentation.

The click gives a world point in mm; the viewer's world axes are (z, y, x) in DICOM LPS (the
placement maps every layer there), so the core point is that triple reversed. The work runs in a
worker thread on its own store connection; the room reloads the subject when it is saved.
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
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from palmares_desktop.core.pet.threshold import RULE_WORDS
from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

#: The rules offered by a click. PERCIST needs the liver reference the reader places first.
CLICK_RULES = ("41%", "50%", "suv2.5", "suv4.0", "percist")


class PetThresholdTool(QGroupBox):
    saved = Signal(dict)  # core's threshold_report: lesion, version, metrics, parameters
    failed = Signal(str)  # the sentence shown to the reader

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__("Segment: PET threshold", parent)
        self.workers = workers
        self._context: Callable[[], tuple[Any, str] | None] = lambda: None
        self.rule = QComboBox()
        for rule in CLICK_RULES:
            self.rule.addItem(RULE_WORDS[rule], rule)
        self.box_mm = QDoubleSpinBox()
        self.box_mm.setRange(10.0, 300.0)
        self.box_mm.setSingleStep(10.0)
        self.box_mm.setValue(60.0)
        self.box_mm.setSuffix(" mm")
        self.box_mm.setToolTip("Edge of the cube around the click in which the PET is thresholded")
        self.lesion = QLineEdit()
        self.lesion.setPlaceholderText("new lesion (PET lesion N)")
        self.lesion.setToolTip("An existing lesion's name gets a new PET version; a new name makes a lesion")
        self.arm = QPushButton("Click a lesion…")
        self.arm.setCheckable(True)
        self.arm.setToolTip("Then click the lesion in the image: the PET around it is thresholded and saved")
        self.liver = QPushButton("Place liver reference…")
        self.liver.setCheckable(True)
        self.liver.setToolTip("For PERCIST: click the right liver lobe, away from lesions (a 3 cm sphere)")
        self.liver.toggled.connect(lambda on: on and self.arm.setChecked(False))
        self.arm.toggled.connect(lambda on: on and self.liver.setChecked(False))
        self.liver_at: tuple[float, float, float] | None = None
        self.liver_subject: str | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Rule", self.rule)
        form.addRow("Box", self.box_mm)
        form.addRow("Lesion", self.lesion)
        form.addRow(self.arm)
        form.addRow(self.liver)
        form.addRow(self.message)

    def bind(self, context: Callable[[], tuple[Any, str] | None]) -> None:
        """`context()` gives (store, subject code) of the open subject, or None."""
        self._context = context

    def on_press(self, _viewer, event) -> None:
        """napari mouse callback: a left click while armed thresholds at the clicked point (or, with
        the liver button down, places PERCIST's liver reference there)."""
        if getattr(event, "button", 1) != 1:
            return
        if self.liver.isChecked():
            self.liver.setChecked(False)
            self.place_liver(tuple(event.position)[-3:])
        elif self.arm.isChecked():
            self.arm.setChecked(False)
            self.threshold_at(tuple(event.position)[-3:])

    def place_liver(self, world_zyx: Sequence[float]) -> None:
        context = self._context()
        if context is None:
            return self._fail("Open a subject with a PET first.")
        self.liver_at = tuple(float(v) for v in reversed(world_zyx))
        self.liver_subject = context[1]
        x, y, z = self.liver_at
        self.message.setText(f"Liver reference at ({x:.0f}, {y:.0f}, {z:.0f}) mm: PERCIST uses it.")
        return None

    def threshold_at(self, world_zyx: Sequence[float]) -> None:
        context = self._context()
        if context is None:
            return self._fail("Open a subject with a PET first.")
        store, code = context
        if store.reader is None:
            return self._fail(
                "Choose a reader first (Reader → Switch reader…): every segmentation has an author."
            )
        at = tuple(float(v) for v in reversed(world_zyx))  # (z, y, x) world -> (x, y, z) LPS
        rule, size, name = self.rule.currentData(), self.box_mm.value(), self.lesion.text().strip() or None
        liver = self.liver_at if self.liver_subject == code else None  # never another subject's
        if rule == "percist" and liver is None:
            return self._fail(
                "PERCIST needs the liver reference: press Place liver reference… and click the liver."
            )
        root, reader = store.root, store.reader
        self.message.setText(f"Thresholding at ({at[0]:.0f}, {at[1]:.0f}, {at[2]:.0f}) mm…")

        def job() -> dict:
            from palmares_desktop.core.pet.subject_pet import threshold_lesion, threshold_report

            with worker_store(root, reader) as worker:
                saved, result = threshold_lesion(
                    worker, code, at, rule, liver_at=liver, size_mm=size, lesion_name=name
                )
                return threshold_report(worker, code, saved, result)

        self.workers.start(
            job, on_success=self._done, on_failure=lambda exc: self._fail(str(exc)), name="pet threshold"
        )
        return None

    def _done(self, report: dict) -> None:
        from palmares_desktop.core.pet.subject_pet import threshold_lines

        self.message.setText(" ".join(threshold_lines(report)))
        self.saved.emit(report)

    def _fail(self, sentence: str) -> None:
        self.message.setText(sentence)
        self.failed.emit(sentence)

"""The "PET threshold" dock widget: click a lesion on an SUVbw PET, get core's threshold and numbers.

The reader picks a rule (41 % or 50 % of the box's SUVmax, fixed SUV 2.5 or 4.0) and a box size,
presses "Click a lesion" and clicks the lesion (or presses "Threshold at cursor"). Core thresholds the
box centred there (`core.pet.threshold.threshold_in_region`, seeded by the box's hottest voxel, as the
workstation's CT/PET room does); the mask becomes a labels layer and the widget shows SUVmax,
SUVmean, SUVpeak, MTV and TLG. A refusal from core is shown as its sentence. Nothing is saved.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from napari.layers import Image
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from napari_palmares._pet import result_lines, threshold_layer
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.pet.threshold import RULE_WORDS, ThresholdResult

#: The rules the widget offers (PERCIST needs a liver reference: the workstation's room places it).
RULES = ("41%", "50%", "suv2.5", "suv4.0")
DEFAULT_BOX_MM = 60.0


class PetThresholdWidget(QWidget):
    """Dock widget contributed as "PET threshold" (napari.yaml)."""

    thresholded = Signal(object)  # the labels layer added
    failed = Signal(str)  # the sentence shown

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.rule = QComboBox()
        for rule in RULES:
            words = RULE_WORDS[rule]
            self.rule.addItem(words[:1].upper() + words[1:], rule)
        self.box_mm = QDoubleSpinBox()
        self.box_mm.setRange(10.0, 300.0)
        self.box_mm.setSingleStep(5.0)
        self.box_mm.setDecimals(0)
        self.box_mm.setSuffix(" mm")
        self.box_mm.setValue(DEFAULT_BOX_MM)
        self.box_mm.setToolTip("Edge of the cubic box, centred on the click, in which the PET is thresholded")
        self.arm = QPushButton("Click a lesion")
        self.arm.setCheckable(True)
        self.arm.setToolTip("The next left click in the viewer thresholds the active PET layer there")
        self.at_cursor = QPushButton("Threshold at cursor")
        self.at_cursor.clicked.connect(lambda: self.threshold_at(tuple(self.viewer.cursor.position)))
        self.results = QLabel()
        self.results.setWordWrap(True)
        self.message = QLabel("Select an SUVbw PET layer, press Click a lesion and click it.")
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Rule", self.rule)
        form.addRow("Box", self.box_mm)
        form.addRow(self.arm)
        form.addRow(self.at_cursor)
        form.addRow(self.results)
        form.addRow(self.message)
        self.last: ThresholdResult | None = None
        self._count = 0
        self.viewer.mouse_drag_callbacks.append(_mouse_callback(weakref.ref(self)))

    # --------------------------------------------------------------------- viewer
    def on_press(self, _viewer: Any, event: Any) -> None:
        """napari mouse callback: a left click while armed thresholds at the clicked point."""
        if getattr(event, "button", 1) != 1 or not self.arm.isChecked():
            return
        self.arm.setChecked(False)  # one click, one lesion
        self.threshold_at(tuple(event.position))

    def pet_layer(self) -> Image:
        """The active layer when it is an image, else the topmost SUVbw image layer."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Image):
            return active
        for layer in reversed(self.viewer.layers):
            if isinstance(layer, Image) and layer.metadata.get("units") == "SUVbw":
                return layer
        raise PalmaresError("Open an SUVbw PET and select its layer first.")

    # --------------------------------------------------------------------- threshold
    def threshold_at(self, world_zyx: Sequence[float]):
        """Threshold the PET around a world point (z, y, x mm); the labels layer added, or None (the
        reason is then shown in the widget)."""
        try:
            if self.viewer.dims.ndisplay != 2:
                raise PalmaresError("Switch to the 2-D view to click a lesion (a 3-D click has no depth).")
            layer = self.pet_layer()
            rule = self.rule.currentData()
            result, mask = threshold_layer(layer, world_zyx, rule, self.box_mm.value())
        except PalmaresError as exc:
            return self._fail(str(exc))
        self.last = result
        self._count += 1
        metrics = result.metrics.to_dict()
        metadata = {
            "source": "napari-palmares PET threshold",
            "pet_layer": layer.name,
            **{
                k: layer.metadata[k]
                for k in ("subject_code", "series_id", "series_uid")
                if k in layer.metadata
            },
            "method": result.method,
            "threshold_suv": result.threshold_suv,
            "parameters": result.parameters,
            "metrics": metrics,
        }
        labels = self.viewer.add_labels(
            mask,
            name=f"PET threshold {self._count} ({rule})",
            metadata=metadata,
            scale=layer.scale,
            translate=layer.translate,
            rotate=layer.rotate,
            units=layer.units,
            opacity=0.9,
        )
        labels.contour = 1  # an outline: the hot spot stays visible inside it
        self.viewer.layers.selection.active = layer  # the next click thresholds the PET again
        self.results.setText("\n".join(result_lines(result)))
        self.message.setText(f"Added the labels layer {labels.name!r}.")
        self.thresholded.emit(labels)
        return labels

    def _fail(self, sentence: str) -> None:
        self.message.setText(sentence)
        self.failed.emit(sentence)
        return None


def _mouse_callback(widget_ref: weakref.ref) -> Callable[[Any, Any], None]:
    """The viewer's mouse callback for a widget, holding it weakly: once the widget is gone (closed
    dock, deleted Qt object) the callback removes itself instead of keeping the widget alive."""

    def on_press(viewer: Any, event: Any) -> None:
        widget = widget_ref()
        try:
            if widget is not None:
                widget.on_press(viewer, event)
                return
        except RuntimeError:  # "Internal C++ object already deleted": the dock was closed
            pass
        if on_press in viewer.mouse_drag_callbacks:
            viewer.mouse_drag_callbacks.remove(on_press)

    return on_press

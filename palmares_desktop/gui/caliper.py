"""The CT/PET room's manual caliper: drag lines on the axial view and read them in mm.

The lengths and the long × short pair come from core (`core/ct/caliper.py`); this widget only keeps
a napari Shapes layer of lines, labels each line with its length, and shows core's sentence.
The mask's own RECIST diameters stay in the Lesions tab; the caliper is the reader's check of them.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QToolButton, QWidget

from palmares_desktop.core.ct.caliper import line_from_points, reading

CALIPER_LAYER = "Caliper"
CALIPER_RGB = "#ff3d6e"  # rose red: apart from the amber cursor and the lesion colours


class CaliperTool(QWidget):
    """A Caliper toggle and a Clear button, and the readout (a label the room places on its status
    line); `bind(viewer)` once the viewer exists."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = None
        self.layer = None
        self._before = None  # the layer that was active before the caliper took the mouse
        # A tick box and a flat button: as tall as the toggles beside them (the tab must not grow).
        self.toggle = QCheckBox("Caliper")
        self.toggle.setToolTip(
            "Drag lines on the axial view to measure them in mm (RECIST: long, then short axis)"
        )
        self.toggle.toggled.connect(self._toggled)
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear lines")
        self.clear_button.setAutoRaise(True)
        self.clear_button.clicked.connect(self.clear)
        # The readout sits on the room's status line (placed by the room): the Display tab must not
        # grow, or the window would no longer fit a 768-pixel laptop screen.
        self.readout = QLabel("")
        self.readout.setStyleSheet(f"color: {CALIPER_RGB}; font-family: monospace; padding: 2px 4px;")
        self.readout.hide()  # shown while there is something to say: an empty label still takes a line
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.clear_button)

    def bind(self, viewer) -> None:
        self.viewer = viewer

    # ------------------------------------------------------------------ layer
    def _layer(self):
        if self.layer is not None and self.layer in self.viewer.model.layers:
            return self.layer
        self.layer = self.viewer.model.add_shapes(
            ndim=3,
            name=CALIPER_LAYER,
            shape_type="line",
            edge_color=CALIPER_RGB,
            edge_width=0.8,  # mm
            units=self.viewer.world_units(),
            features={"length": np.zeros(0)},
            text={
                "string": "{length:.1f} mm",
                "color": CALIPER_RGB,
                "size": 12,
                "anchor": "upper_left",
                "blending": "translucent_no_depth",
            },
            blending="translucent_no_depth",
        )
        self.layer.current_edge_color = CALIPER_RGB
        self.layer.events.data.connect(self._measured)
        return self.layer

    def _toggled(self, on: bool) -> None:
        if self.viewer is None:
            return
        layers = self.viewer.model.layers
        if on:
            self._before = layers.selection.active
            layer = self._layer()
            layers.selection.active = layer
            layer.mode = "add_line"
            self._measured()
        elif self.layer is not None and self.layer in layers:
            self.layer.mode = "pan_zoom"
            if self._before is not None and self._before in layers:
                layers.selection.active = self._before

    def _measured(self, _event=None) -> None:
        """Every line's length from core, written on the line and in the readout."""
        if self.layer is None:
            return
        lines = self._lines()
        if len(lines) == len(self.layer.data):
            self.layer.features = {"length": np.asarray([line.length_mm for line in lines], dtype=float)}
            self.layer.refresh_text()
        self._say(reading(lines).sentence())

    def _say(self, text: str) -> None:
        self.readout.setText(text)
        self.readout.setVisible(bool(text))

    def _lines(self):
        if self.layer is None:
            return []
        return [line_from_points(np.asarray(s)[:, -3:]) for s in self.layer.data if len(s) == 2]

    def lines_mm(self) -> list[float]:
        return [line.length_mm for line in self._lines()]

    def add_line(self, start_zyx, end_zyx) -> None:
        """One line, as a drag in the axial view draws it (tests and scripts)."""
        self._layer().add_lines([np.asarray([start_zyx, end_zyx], dtype=float)], edge_color=CALIPER_RGB)

    def clear(self) -> None:
        if self.layer is not None and self.layer in self.viewer.model.layers:
            self.layer.data = []
        self._measured()

    def forget(self) -> None:
        """The subject's layers were cleared: the lines went with them."""
        self.toggle.setChecked(False)
        self.layer = None
        self._say("")

"""The CT/PET room's Plugins tab: the segmentation tools of the plugins this site allows.

The tools come from core's PluginManager for the open store (loaded when the room opens a subject);
the parameter form is generated from the tool's typed parameter dataclass (`describe_parameters`):
a float is a spin box with its bounds and unit, an int a whole-number spin box, a bool a check box,
a choice a drop-down and a str a text field, each with the plugin's help as tooltip. "Click a seed…"
runs the tool at the next click (the point is handed to the plugin), "Run" without one. The job is
core's `plugin_tool_lesion`, the same `palmares plugins run` calls, in a worker on its own store
connection; core's sentence (or its refusal) is shown and the room reloads the saved outline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from qtpy.QtCore import QEvent, QSize, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

IMAGES = {"CT": "CT (HU)", "PT": "PET (SUVbw)"}
_NO_BOUND = 1e9  # a spin box needs a range: a field without a bound gets a very wide one
_INT_BOUND = 2**31 - 1


def _decimals(value: float) -> int:
    """Enough decimals to show the default exactly (1 to 4)."""
    text = f"{float(value):.4f}".rstrip("0")
    return max(1, min(4, len(text.split(".")[1]) if "." in text else 1))


def parameter_widget(spec) -> QWidget:
    """The form widget of one `ParameterField`, showing its default."""
    if spec.type == "float":
        widget = QDoubleSpinBox()
        widget.setDecimals(_decimals(spec.default))
        widget.setRange(
            float(spec.minimum) if spec.minimum is not None else -_NO_BOUND,
            float(spec.maximum) if spec.maximum is not None else _NO_BOUND,
        )
        widget.setSingleStep(1.0 if abs(float(spec.default)) >= 10 else 0.1)
        widget.setValue(float(spec.default))
        if spec.unit:
            widget.setSuffix(f" {spec.unit}")
    elif spec.type == "int":
        widget = QSpinBox()
        widget.setRange(
            int(spec.minimum) if spec.minimum is not None else -_INT_BOUND,
            int(spec.maximum) if spec.maximum is not None else _INT_BOUND,
        )
        widget.setValue(int(spec.default))
        if spec.unit:
            widget.setSuffix(f" {spec.unit}")
    elif spec.type == "bool":
        widget = QCheckBox()
        widget.setChecked(bool(spec.default))
    elif spec.type == "choice":
        widget = QComboBox()
        widget.addItems(list(spec.choices))
        widget.setCurrentText(str(spec.default))
    else:
        widget = QLineEdit(str(spec.default))
    widget.setObjectName(spec.name)
    widget.setToolTip(spec.help or spec.label)
    return widget


def widget_value(spec, widget: QWidget) -> Any:
    """The value a form widget holds, as core's make_parameters takes it."""
    if spec.type in ("float", "int"):
        return widget.value()
    if spec.type == "bool":
        return widget.isChecked()
    if spec.type == "choice":
        return widget.currentText()
    return widget.text()


class _FormScroll(QScrollArea):
    """The generated form: as tall as its rows up to about ten, then it scrolls (QScrollArea's own
    size hint is the form's first size, not the size of the tool chosen since)."""

    ROWS = 10

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        inner = self.widget().sizeHint().expandedTo(self.widget().minimumSizeHint())
        return QSize(inner.width(), min(inner.height(), self.ROWS * (self.fontMetrics().height() + 10)))

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        handled = super().eventFilter(watched, event)
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the form changed (rows, a style sheet): so does the hint
        return handled


class PluginTools(QGroupBox):
    saved = Signal(dict)  # core's plugin_tool_report of what was stored

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__("Plugin tools", parent)
        self.workers = workers
        self._context: Callable[[], tuple | None] = lambda: None
        self.contributions: list = []  # core Contributions of the shown tools, in the combo's order
        self.fields: list[tuple[Any, QWidget]] = []  # (ParameterField, widget) of the chosen tool
        self._listed: tuple | None = None  # what refresh() last listed: the form stays if it is the same
        self.tool = QComboBox()
        self.tool.currentIndexChanged.connect(self._tool_changed)
        self.image = QComboBox()
        self.parameters = QWidget()
        self.form = QFormLayout(self.parameters)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.scroll = _FormScroll()  # a plugin with many parameters scrolls, never makes the room taller
        self.scroll.setWidget(self.parameters)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.lesion = QLineEdit()
        self.lesion.setPlaceholderText("new lesion (CT lesion N / PET lesion N)")
        self.arm = QPushButton("Click a seed…")
        self.arm.setCheckable(True)
        self.arm.setToolTip("Run the tool at the next click in the images (the plugin gets the point)")
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the tool without a seed")
        self.run_button.clicked.connect(lambda: self.run())
        self.message = QLabel("Open a subject: the plugin tools this site allows show here.")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.arm)
        buttons.addWidget(self.run_button)
        layout = QFormLayout(self)
        layout.addRow("Tool", self.tool)
        layout.addRow("Image", self.image)
        layout.addRow(self.scroll)
        layout.addRow("Lesion", self.lesion)
        layout.addRow(buttons)
        layout.addRow(self.message)
        self._set_enabled(False)

    def bind(self, context: Callable[[], tuple | None]) -> None:
        """`context()` gives (store, subject code, ...) when a subject with images is open, or None."""
        self._context = context

    # ------------------------------------------------------------ the tools of the store
    def refresh(self, store) -> None:
        """List the segmentation tools of the plugins `store`'s site allows (core loads them). The
        same tools as before (e.g. the room reloads after a save) keep the form and the message."""
        from palmares_desktop.core.errors import PalmaresError
        from palmares_desktop.core.plugins.manager import PluginManager, allowed_plugins

        try:
            manager = PluginManager.for_store(store)
            allowed = allowed_plugins(store)
        except PalmaresError as exc:
            manager, allowed, problem = None, [], exc.sentence
        else:
            problem = ""
        tools = manager.segmentation_tools() if manager else []
        listed = (str(store.root), tuple((c.name, c.version) for c in tools), tuple(allowed), problem)
        if listed == self._listed:
            return
        self._listed = listed
        previous = self.tool.currentData()
        self.contributions = tools
        self.tool.blockSignals(True)
        self.tool.clear()
        for contribution in tools:
            self.tool.addItem(contribution.item.title, contribution.name)
            self.tool.setItemData(
                self.tool.count() - 1,
                f"{contribution.name} {contribution.version}: {contribution.item.description}".rstrip(": "),
                Qt.ItemDataRole.ToolTipRole,
            )
        if previous is not None and self.tool.findData(previous) >= 0:
            self.tool.setCurrentIndex(self.tool.findData(previous))
        self.tool.blockSignals(False)
        self._tool_changed()
        if tools:
            self.message.setText("Choose a tool and its parameters, then Run or Click a seed… in the images.")
        elif problem:
            self.message.setText(problem)
        elif not allowed:
            self.message.setText(
                "No plugin is allowed at this site, so there is no plugin tool. An administrator allows "
                "one with `palmares plugins allow NAME --store ...` (`palmares plugins` lists them)."
            )
        else:
            why = [
                f"{s.plugin.name}: {s.reason}"
                for s in (manager.statuses if manager else [])
                if s.allowed and not s.loaded
            ]
            missing = sorted(set(allowed) - {s.plugin.name for s in manager.statuses}) if manager else []
            why += [f"{name}: allowed but not installed" for name in missing]
            self.message.setText(
                "No allowed plugin offers a segmentation tool"
                + (f" ({'; '.join(why)})." if why else ".")
                + " Allow another with `palmares plugins allow NAME --store ...`."
            )

    def _chosen(self):
        index = self.tool.currentIndex()
        return self.contributions[index] if 0 <= index < len(self.contributions) else None

    def _tool_changed(self) -> None:
        from palmares_desktop.core.plugins import describe_parameters

        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = []
        self.image.clear()
        contribution = self._chosen()
        self._set_enabled(contribution is not None)
        if contribution is None:
            self.scroll.updateGeometry()
            return
        for code in contribution.item.modalities:
            if code in IMAGES:
                self.image.addItem(IMAGES[code], code)
        self.image.setEnabled(self.image.count() > 1)
        for spec in describe_parameters(contribution.item.parameters):
            widget = parameter_widget(spec)
            label = QLabel(spec.label)
            label.setToolTip(spec.help or spec.label)
            self.form.addRow(label, widget)
            self.fields.append((spec, widget))
        self.scroll.updateGeometry()

    def _set_enabled(self, on: bool) -> None:
        for widget in (self.tool, self.image, self.lesion, self.arm, self.run_button):
            widget.setEnabled(on)

    def values(self) -> dict[str, Any]:
        """{parameter name: value} of the form."""
        return {spec.name: widget_value(spec, widget) for spec, widget in self.fields}

    # ------------------------------------------------------------ running
    def on_press(self, _viewer, event) -> None:
        """napari mouse callback: a left click while armed runs the chosen tool with that seed."""
        if getattr(event, "button", 1) == 1 and self.arm.isChecked():
            self.arm.setChecked(False)
            self.run_at(tuple(event.position)[-3:])

    def run_at(self, world_zyx: Sequence[float]) -> None:
        self.run(tuple(float(v) for v in reversed(world_zyx)))  # (z, y, x) world -> (x, y, z) LPS

    def run(self, seed_mm: tuple[float, float, float] | None = None) -> None:
        from palmares_desktop.core.plugins import PluginError, make_parameters

        contribution = self._chosen()
        context = self._context()
        if contribution is None:
            return
        if context is None:
            self.message.setText("Open a subject with a CT or a PET first (or wait until it has loaded).")
            return
        store, code = context[0], context[1]
        if store.reader is None:
            self.message.setText(
                "Choose a reader first (Reader → Switch reader…): every outline has an author."
            )
            return
        values = self.values()
        try:
            make_parameters(contribution.item.parameters, values)  # refused in words before any work
        except PluginError as exc:
            self.message.setText(exc.sentence)
            return
        tool, modality = contribution.name, self.image.currentData()
        name = self.lesion.text().strip() or None
        root, reader = store.root, store.reader

        def job() -> dict:
            from palmares_desktop.core.plugins.tools import plugin_tool_lesion

            with worker_store(root, reader) as worker:
                _, _, report = plugin_tool_lesion(worker, code, tool, modality, values, seed_mm, name)
                return report

        where = f" from ({seed_mm[0]:.0f}, {seed_mm[1]:.0f}, {seed_mm[2]:.0f}) mm" if seed_mm else ""
        self.message.setText(f"Running {contribution.item.title} on the {IMAGES[modality]}{where}…")
        self.run_button.setEnabled(False)
        self.arm.setEnabled(False)
        self.workers.start(job, on_success=self._done, on_failure=self._failed, name="plugin tool")

    def _done(self, report: dict) -> None:
        self._set_enabled(self._chosen() is not None)
        self.message.setText(report["sentence"])
        self.saved.emit(report)

    def _failed(self, exc: Exception) -> None:
        self._set_enabled(self._chosen() is not None)
        sentence = getattr(exc, "sentence", None)
        self.message.setText(sentence or f"The plugin tool failed: {exc}")

"""The slide room's class legend: one row per study class with its colour, a check box that shows or
hides the class's annotations on screen (display only: nothing is stored), the area of its outlines
and how many points (cells) it has, from AnnotationSession.class_summary; the number of outlines is
in the row's tooltip and in `text()`. Two columns, so it fits the 330-pixel side panel."""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QCheckBox, QGridLayout, QLabel, QWidget

UNCLASSIFIED = "Unclassified"


def swatch(rgb, size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class ClassLegend(QWidget):
    """Rows: [x] colour name | area of the outlines, points. `text()` gives the rows in words."""

    visibility_changed = Signal(str, bool)  # class name, shown

    def __init__(self, classes: list[dict], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(1)
        grid.setColumnStretch(0, 1)
        self._rows: dict[str, tuple[QCheckBox, QLabel]] = {}
        self._lines: list[str] = []
        for n, c in enumerate([*classes, {"name": UNCLASSIFIED, "colour": (255, 255, 255), "snomed": ""}]):
            name = c["name"]
            box = QCheckBox(name)
            box.setObjectName(f"show-{name}")
            box.setIcon(swatch(c["colour"]))
            box.setChecked(True)
            code = c.get("snomed")
            box.setToolTip(
                f"Show or hide the {name} annotations on screen (nothing is changed in the store)."
                + (f" SNOMED CT {code}." if code else "")
            )
            box.toggled.connect(lambda shown, name=name: self.visibility_changed.emit(name, shown))
            summary = QLabel()
            summary.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            summary.setWordWrap(True)  # "12.500 mm², 14 points" takes two lines rather than more width
            grid.addWidget(box, n, 0)
            grid.addWidget(summary, n, 1)
            self._rows[name] = (box, summary)
        self.show_summary({})

    def is_shown(self, name: str) -> bool:
        return self._rows[name][0].isChecked() if name in self._rows else True

    def set_shown(self, name: str, shown: bool, quiet: bool = False) -> None:
        """Tick or untick a class; `quiet`: without telling (the caller redraws)."""
        box = self._rows[name][0]
        box.blockSignals(quiet)
        try:
            box.setChecked(shown)
        finally:
            box.blockSignals(False)

    def hidden(self) -> set[str]:
        return {name for name, (box, _) in self._rows.items() if not box.isChecked()}

    def show_summary(self, summary: dict[str, dict]) -> None:
        """`summary` as AnnotationSession.class_summary gives it (class -> shapes, points, area_mm2)."""
        self._lines = []
        for name, (box, label) in self._rows.items():
            entry = summary.get(name, {"shapes": 0, "points": 0, "area_mm2": None})
            shapes, points = entry["shapes"], entry["points"]
            area = ""
            if shapes:
                area = f"{entry['area_mm2']:.3f} mm²" if entry["area_mm2"] is not None else "no MPP"
            shown = [area] if area else []
            shown += [_plural(points, "point")] if points else []
            label.setText(", ".join(shown) or "—")
            words = [_plural(shapes, "shape")] if shapes else []
            words += [_plural(points, "point")] if points else []
            label.setToolTip(", ".join(words + ([area] if area else [])) or "none")
            visible = name != UNCLASSIFIED or bool(shapes or points)
            box.setVisible(visible)
            label.setVisible(visible)
            if visible:
                self._lines.append(f"{name}: {', '.join(words) or 'none'}" + (f", {area}" if area else ""))

    def text(self) -> str:
        """The legend in words, one class a line ("Lymphocytic infiltrate: 12 points")."""
        return "\n".join(self._lines)

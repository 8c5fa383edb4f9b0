"""Study → Reading rounds… → New round…: the coordinator defines a reading round.

The dialog only gathers the choices; core's `create_round` checks them (two readers or a repeat,
known readers and subjects, a free name) and makes the round with all its assignments in one
transaction. A refusal is shown as core's sentence and the dialog stays open with the choices.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.store import Store

MODALITIES = (("PET", "pet"), ("CT", "ct"), ("H&E", "he"))


def _checklist(items: list[tuple[str, str]]) -> QListWidget:
    """A list of (shown text, value) with a check box per row, none checked."""
    widget = QListWidget()
    for text, value in items:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, value)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Unchecked)
        widget.addItem(item)
    return widget


def checked(widget: QListWidget) -> list[str]:
    return [
        widget.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(widget.count())
        if widget.item(i).checkState() == Qt.CheckState.Checked
    ]


def set_checked(widget: QListWidget, values: list[str]) -> None:
    for i in range(widget.count()):
        item = widget.item(i)
        wanted = item.data(Qt.ItemDataRole.UserRole) in values
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)


class NewRoundDialog(QDialog):
    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New reading round")
        self.resize(560, 620)
        self.store = store
        self.created: dict | None = None

        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. PET inter-reader 2027")
        self.modality = QComboBox()
        for text, value in MODALITIES:
            self.modality.addItem(text, value)
        self.subjects = _checklist([(row["code"], row["code"]) for row in store.worklist()])
        self.subject_filter = QLineEdit()
        self.subject_filter.setPlaceholderText("Filter subjects (e.g. IT03-00)")
        self.subject_filter.textChanged.connect(self._filter_subjects)
        people = [r for r in store.readers() if r.role != "system"]
        self.readers = _checklist([(f"{r.name} ({r.role}, {r.site_code})", r.name) for r in people])
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 5)
        self.repeats.setToolTip(
            "Readings of each subject by each reader (2 or more: intra-reader agreement)."
        )
        self.delay = QSpinBox()
        self.delay.setRange(0, 365)
        self.delay.setSuffix(" days")
        self.delay.setToolTip("The least time between a reader's repeats of one subject.")
        self.blinded = QCheckBox("Blinded: readers see neither each other's work nor their earlier repeat")
        self.blinded.setChecked(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #ff8a80")

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Modality", self.modality)
        form.addRow("Subjects", self.subject_filter)
        form.addRow("", self.subjects)
        form.addRow("Readers", self.readers)
        form.addRow("Repeats", self.repeats)
        form.addRow("Delay between repeats", self.delay)
        form.addRow(self.blinded)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = buttons.addButton("Create round", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.create)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def _filter_subjects(self, text: str) -> None:
        for i in range(self.subjects.count()):
            item = self.subjects.item(i)
            item.setHidden(text.strip().lower() not in item.text().lower())

    def create(self) -> dict | None:
        from palmares_desktop.core.study.rounds import create_round

        try:
            self.created = create_round(
                self.store,
                self.name.text(),
                self.modality.currentData(),
                checked(self.subjects),
                checked(self.readers),
                repeats=self.repeats.value(),
                min_delay_days=self.delay.value(),
                blinded=self.blinded.isChecked(),
            )
        except PalmaresError as exc:
            self.message.setText(str(exc))
            return None
        self.accept()
        return self.created

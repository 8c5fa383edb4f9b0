"""The CT/PET room's lesions panel: one row per lesion of the subject (not per segmentation), with its
site, RECIST status, numbers and outlines, and the edits of core/lesions.py (add, rename, describe,
delete and undo delete).

The panel decides nothing: every edit is one core call (a quick row update, made in the GUI thread,
refused in a sentence), the RECIST sentences are core's `recist_check`. The numbers (core's
`lesion_numbers`: PET metrics and RECIST diameters, which read the masks) are computed in a worker
thread on its own read-only connection, as the current reader, so what a blinded round hides stays
hidden.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.lesions import (
    BONE_CHARACTERS,
    RECIST_STATUSES,
    SITES,
    add_lesion,
    bone_character_text,
    delete_lesion,
    describe_lesion,
    is_node,
    lesion_numbers,
    parse_bone_character,
    recist_check,
    rename_lesion,
    restore_lesion,
)
from palmares_desktop.core.model import Lesion, Subject
from palmares_desktop.core.reading_set import subject_segmentations
from palmares_desktop.core.store import Reader, Store, records
from palmares_desktop.gui.workers import WorkerPool

log = logging.getLogger(__name__)

#: Two-line headers keep the number columns narrow: the lesion name gets the room.
COLUMNS = ("Lesion", "Site", "RECIST", "SUV\nmax", "MTV\nmL", "Diam.\nmm", "Outlines")
NUMBER_COLUMNS = (3, 4, 5)
MODALITY_NAMES = {"CT": "CT", "PT": "PET"}
ERROR_STYLE = "color: #c0392b; font-weight: bold;"
BREACH_STYLE = "color: #b9770e;"
NO_BREACH = "RECIST 1.1: no rule breached."


def measure(root: Path, reader: Reader | None, subject_code: str) -> tuple[dict[str, dict], float | None]:
    """Worker-thread part: core's numbers of every lesion, and the CT's slice spacing they come from
    (RECIST's measurable size grows on slices thicker than 5 mm)."""
    with Store.open(root, create=False, read_only=True) as store:
        if reader is not None:
            store.use_reader(reader)  # blinding: the versions this reader may see
        numbers = lesion_numbers(store, subject_code)
        subject = store.subject_by_code(subject_code)
        cts = records.series_of_subject_oldest_first(store, subject.id, "CT")  # lesion_numbers' CT: the first
        grid = cts[0].grid if cts else None
    return numbers, (grid.spacing[2] if grid is not None and len(grid.spacing) > 2 else None)


def number_text(value: Any, digits: int) -> str:
    """A number as the table shows it; empty when missing."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def diameter_text(lesion: Lesion, numbers: dict) -> str:
    """RECIST 1.1's measure: the short axis (SA) of a lymph node, else the longest diameter (LD)."""
    if is_node(lesion.organ):
        text = number_text(numbers.get("recist_short_axis_mm"), 1)
        return f"SA {text}" if text else ""
    text = number_text(numbers.get("recist_long_axis_mm"), 1)
    return f"LD {text}" if text else ""


def _combo(items: list[tuple[str, str | None]]) -> QComboBox:
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    # Long items (SNOMED labels) must not widen the side panel: the popup shows them in full.
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    return combo


def site_combo() -> QComboBox:
    return _combo([("", None)] + [(site.label, site.name) for site in SITES])


class NewLesionDialog(QDialog):
    """Name and site of a new lesion."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a lesion")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Liver segment 7")
        self.site = site_combo()
        self.site.setMinimumContentsLength(24)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Site", self.site)
        form.addRow(buttons)

    def values(self) -> tuple[str, str | None]:
        return self.name.text(), self.site.currentData()


class LesionsPanel(QWidget):
    changed = Signal()  # a lesion was added, renamed, described, deleted or restored
    lesion_selected = Signal(str)  # lesion name, when the user selects a row
    measured = Signal()  # the numbers of the subject's lesions are on screen

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workers = workers
        self.store: Store | None = None
        self.subject: Subject | None = None
        self._rows: list[Lesion] = []
        self._outlines: dict[str, list[str]] = {}
        self._numbers: dict[str, dict] | None = None  # None while they are being computed
        self._slice_mm: float | None = None
        self._deleted: list[str] = []  # lesion ids deleted here, the last one first to undo
        self._wanted: str | None = None  # lesion id to select at the next fill
        self._quiet = False  # selecting a row without telling the room
        self._generation = 0

        self.add_button = QPushButton("Add…")
        self.rename_button = QPushButton("Rename…")
        self.delete_button = QPushButton("Delete")
        self.undo_button = QPushButton("Undo delete")
        self.add_button.clicked.connect(self.ask_add)
        self.rename_button.clicked.connect(self.ask_rename)
        self.delete_button.clicked.connect(self.ask_delete)
        self.undo_button.clicked.connect(self.undo_delete)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeaderItem(5).setToolTip(
            "RECIST 1.1 diameter on the CT: longest diameter (LD), or short axis (SA) for lymph nodes"
        )
        self.table.horizontalHeaderItem(6).setToolTip("The lesion's segmentations shown in the room")
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        # A long lesion name wraps onto a second line rather than being cut.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setMinimumSectionSize(self.fontMetrics().height() + 8)
        self.table.setWordWrap(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(4 * (self.fontMetrics().height() + 8))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # a long name wraps, never cut
        header.setMinimumSectionSize(self.fontMetrics().horizontalAdvance("00.00") + 10)  # numbers apart
        self.table.itemSelectionChanged.connect(self._selection_changed)

        self.recist = QLabel()
        self.recist.setWordWrap(True)
        self.site = site_combo()
        self.status = _combo([("", None)] + [(s, s) for s in RECIST_STATUSES])
        self.bone = _combo([("", None)] + [(c, c) for c in BONE_CHARACTERS])
        self.soft_tissue = QCheckBox("soft-tissue component")
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("Notes")
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Save the site, RECIST status, bone character and notes of the lesion")
        self.apply_button.clicked.connect(self.apply)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QHBoxLayout()
        for button in (self.add_button, self.rename_button, self.delete_button, self.undo_button):
            buttons.addWidget(button)
        editors = QGridLayout()
        editors.addWidget(QLabel("Site"), 0, 0)
        editors.addWidget(self.site, 0, 1)
        editors.addWidget(QLabel("RECIST"), 0, 2)
        editors.addWidget(self.status, 0, 3)
        editors.addWidget(QLabel("Bone"), 1, 0)
        editors.addWidget(self.bone, 1, 1)
        editors.addWidget(self.soft_tissue, 1, 2, 1, 2)
        editors.addWidget(QLabel("Notes"), 2, 0)
        editors.addWidget(self.notes, 2, 1, 1, 2)
        editors.addWidget(self.apply_button, 2, 3)
        editors.setColumnStretch(1, 3)
        editors.setColumnStretch(3, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.recist)
        layout.addLayout(editors)
        layout.addWidget(self.message)
        self._enable()

    # ------------------------------------------------------------ subject
    def set_subject(self, store: Store, subject: Subject) -> None:
        """Show `subject`'s lesions now and compute their numbers in the background."""
        if self.subject is None or self.subject.id != subject.id or self.store is not store:
            self._deleted, self._wanted, self._numbers = [], None, None
            self.message.clear()
        self.store, self.subject = store, subject
        if store.read_only:
            self._say(f"The store {store.root} was opened read-only: lesions can be viewed, not changed.")
        self._reload()
        self._generation += 1
        generation, root, reader, code = self._generation, store.root, store.reader, subject.code
        self.workers.start(
            lambda: measure(root, reader, code),
            on_success=lambda result: self._measured(result, generation),
            on_failure=lambda exc: self._measure_failed(exc, generation),
            name=f"lesion numbers {subject.label}",
        )

    def clear(self) -> None:
        self._generation += 1
        self.store = self.subject = self._numbers = self._wanted = None
        self._rows, self._outlines, self._deleted = [], {}, []
        self.table.setRowCount(0)
        self.recist.clear()
        self.message.clear()
        self._enable()

    def _reload(self) -> None:
        """Re-read the subject's lesions and outlines (a few rows: in the GUI thread) and refill."""
        self._rows = records.lesions_of_subject(self.store, self.subject.id)
        self._outlines = {}
        for seg in subject_segmentations(self.store, self.subject.id):  # CT before PET
            modality = MODALITY_NAMES.get(seg.series_modality or "", "?")
            names = self._outlines.setdefault(seg.lesion_id, [])
            name = f"{modality}\u00a0v{seg.version or 1}"  # no break inside "CT v2"
            if name not in names:
                names.append(name)
        self._fill()

    def _measured(self, result: tuple[dict[str, dict], float | None], generation: int) -> None:
        if generation != self._generation:
            return  # another subject (or a newer measurement) meanwhile
        self._numbers, self._slice_mm = result
        unavailable = next(
            (n["pet_unavailable"] for n in self._numbers.values() if "pet_unavailable" in n), None
        )
        if unavailable:
            self._say(self._shown(f"No PET numbers: {unavailable}"))
        self._fill()
        self.measured.emit()

    def _measure_failed(self, exc: Exception, generation: int) -> None:
        if generation != self._generation:
            return
        self._numbers = {}
        if isinstance(exc, PalmaresError):
            sentence = f"The lesion numbers could not be computed: {exc}"
        else:  # a bug or an unreadable file: one line here, the traceback in the log (TaskThread)
            sentence = (
                f"The lesion numbers could not be computed ({type(exc).__name__}); the log file has "
                "the details."
            )
        self._say(self._shown(sentence), error=True)
        self._fill()
        self.measured.emit()

    # ------------------------------------------------------------ showing
    def _fill(self) -> None:
        wanted = self._wanted or self.selected_id()
        self._wanted = None
        numbers = self._numbers or {}
        hints = {n.lesion: n.text for n in self._recist_notes() if n.level == "hint"}
        self._quiet = True
        self.table.setRowCount(len(self._rows))
        for row, lesion in enumerate(self._rows):
            found = numbers.get(lesion.id, {})
            cells = [
                lesion.name,
                lesion.organ or "",
                lesion.recist_status or "",
                number_text(found.get("suv_max"), 2),
                number_text(found.get("mtv_ml"), 2),
                diameter_text(lesion, found),
                ", ".join(self._outlines.get(lesion.id, [])),
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, lesion.id)
                if column in NUMBER_COLUMNS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
            self.table.item(row, 0).setToolTip(self._details(lesion, found))
            if lesion.name in hints:
                self.table.item(row, 2).setToolTip(hints[lesion.name])
        ids = [x.id for x in self._rows]
        if wanted in ids:
            self.table.selectRow(ids.index(wanted))
        else:
            self.table.clearSelection()
        self._quiet = False
        self._show_recist()
        self._show_editors()

    @staticmethod
    def _details(lesion: Lesion, found: dict) -> str:
        parts = [
            f"{label} {text}"
            for label, key, digits in (
                ("SUVpeak", "suv_peak", 2),
                ("SUVmean", "suv_mean", 2),
                ("TLG", "tlg", 2),
                ("HU mean", "hu_mean", 0),
            )
            if (text := number_text(found.get(key), digits))
        ]
        for label, key in (("Bone", "bone_character"), ("Notes", "notes")):
            if getattr(lesion, key):
                parts.append(f"{label}: {getattr(lesion, key)}")
        return "\n".join([lesion.name, *parts])

    def _recist_notes(self) -> list:
        if self._numbers is None:
            return []
        measured = [{**self._numbers.get(x.id, {}), **asdict(x)} for x in self._rows]  # its organ, status
        return recist_check(measured, self._slice_mm)

    def _show_recist(self) -> None:
        if self.subject is None:
            self.recist.clear()
            return
        if self._numbers is None:
            self.recist.setStyleSheet("")
            self.recist.setText("RECIST 1.1: measuring the lesions…")
            return
        notes = self._recist_notes()
        breaches = [n.text for n in notes if n.level == "breach"]
        hints = sum(n.level == "hint" for n in notes)
        self.recist.setStyleSheet(BREACH_STYLE if breaches else "")
        text = "\n".join(f"⚠ {self._shown(sentence)}" for sentence in breaches) or NO_BREACH
        if hints:
            text += (
                f"\n{hints} measured lesion(s) without a status: hover their RECIST cell for what "
                "RECIST 1.1 allows."
            )
        self.recist.setText(text)

    def _show_editors(self) -> None:
        lesion = self.selected_lesion()
        if lesion is not None:
            organ = lesion.organ
            if organ and self.site.findData(organ) < 0:  # a site stored before the fixed list
                self.site.addItem(f"{organ} (not in the site list)", organ)
            self.site.setCurrentIndex(self.site.findData(organ) if organ else 0)
            self.status.setCurrentIndex(max(0, self.status.findData(lesion.recist_status)))
            character, soft = parse_bone_character(lesion.bone_character)
            self.bone.setCurrentIndex(max(0, self.bone.findData(character)))
            self.soft_tissue.setChecked(soft)
            self.notes.setText(lesion.notes or "")
        else:
            for combo in (self.site, self.status, self.bone):
                combo.setCurrentIndex(0)
            self.soft_tissue.setChecked(False)
            self.notes.clear()
        self._enable()

    def _enable(self) -> None:
        writable = self.subject is not None and self.store is not None and not self.store.read_only
        selected = writable and self.selected_id() is not None
        self.add_button.setEnabled(writable)
        self.undo_button.setEnabled(writable and bool(self._deleted))
        for widget in (
            self.rename_button,
            self.delete_button,
            self.site,
            self.status,
            self.bone,
            self.soft_tissue,
            self.notes,
            self.apply_button,
        ):
            widget.setEnabled(selected)

    def _say(self, sentence: str, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setText(sentence)

    def _shown(self, sentence: str) -> str:
        """A blinded round names the case, never the subject code (main_window's `shown`)."""
        shown = self.subject.shown if self.subject else ""
        return sentence.replace(self.subject.code, shown) if shown else sentence

    def measuring(self) -> bool:
        """The subject's numbers are still being computed (their cells are empty meanwhile)."""
        return self.subject is not None and self._numbers is None

    # ------------------------------------------------------------ selection
    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else None

    def selected_lesion(self) -> Lesion | None:
        lesion_id = self.selected_id()
        return next((x for x in self._rows if x.id == lesion_id), None)

    def select_lesion(self, lesion_id: str) -> None:
        """Select a lesion because the room shows it (nothing is emitted back)."""
        ids = [x.id for x in self._rows]
        if lesion_id in ids and self.selected_id() != lesion_id:
            self._quiet = True
            self.table.selectRow(ids.index(lesion_id))
            self._quiet = False
            self._show_editors()

    def _selection_changed(self) -> None:
        if self._quiet:
            return
        self._show_editors()
        lesion = self.selected_lesion()
        if lesion is not None:
            self.lesion_selected.emit(lesion.name)

    # ------------------------------------------------------------ edits
    def _edit(self, action: Callable[[], Lesion], done: str | Callable[[Lesion], str]) -> bool:
        """Run one core edit; a refusal is shown as its sentence and changes nothing."""
        if self.store is None or self.subject is None:
            self._say("Open a subject first.", error=True)
            return False
        try:
            edited = action()
        except PalmaresError as exc:
            log.info("lesion edit refused: %s", exc)
            self._say(self._shown(str(exc)), error=True)
            return False
        self._wanted = edited.id  # a deleted lesion is no longer listed: nothing selected
        self._reload()
        self._say(done(edited) if callable(done) else done)
        self.changed.emit()
        return True

    def ask_add(self) -> None:
        dialog = NewLesionDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        name, organ = dialog.values()
        self._edit(
            lambda: add_lesion(self.store, self.subject.code, name, organ),
            f"Lesion {' '.join(name.split())!r} added.",
        )

    def ask_rename(self) -> None:
        lesion = self.selected_lesion()
        if lesion is None:
            return
        name, ok = QInputDialog.getText(
            self, "Rename lesion", f"New name of {lesion.name}:", QLineEdit.EchoMode.Normal, lesion.name
        )
        if ok and name.strip() != lesion.name:
            self._edit(
                lambda: rename_lesion(self.store, lesion.id, name),
                f"{lesion.name} renamed {' '.join(name.split())!r}.",
            )

    def apply(self) -> None:
        lesion = self.selected_lesion()
        if lesion is None:
            return
        self._edit(
            lambda: describe_lesion(
                self.store,
                lesion.id,
                organ=self.site.currentData(),
                recist_status=self.status.currentData(),
                bone_character=bone_character_text(self.bone.currentData(), self.soft_tissue.isChecked()),
                notes=self.notes.text(),
            ),
            f"{lesion.name}: description saved.",
        )

    def ask_delete(self) -> None:
        lesion = self.selected_lesion()
        if lesion is None:
            return
        answer = QMessageBox.question(
            self,
            "Delete lesion",
            f"Delete the lesion {lesion.name}? Its outlines stay in the store and Undo delete brings "
            "it back.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return

        def action() -> Lesion:
            deleted = delete_lesion(self.store, lesion.id)
            self._deleted.append(lesion.id)
            return deleted

        self._edit(action, f"{lesion.name} deleted: Undo delete brings it back.")

    def undo_delete(self) -> None:
        if not self._deleted:
            return
        lesion_id = self._deleted[-1]

        def action() -> Lesion:
            restored = restore_lesion(self.store, lesion_id)
            self._deleted.pop()
            return restored

        self._edit(action, lambda restored: f"{restored.name} restored.")

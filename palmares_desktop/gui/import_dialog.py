"""File → Import DICOM folder…: scan preview, subject code, progress with Cancel, summary.

Both steps are core tasks (`iter_judge_folder`, `iter_import_dicom`) driven in a worker thread;
the Usable column is core's verdict (core/series_verdict.py), the same rule as `palmares scan`;
Cancel closes the import generator between two steps, so core rolls back what it had not committed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.modalities import display_of
from palmares_desktop.core.series_verdict import NO, YES, SeriesVerdict, matrix_text
from palmares_desktop.core.store import Store, StoreError, check_subject_code
from palmares_desktop.gui.workers import TaskThread, WorkerPool, worker_store

log = logging.getLogger(__name__)

SERIES_COLUMNS = [
    "Modality",
    "Description",
    "Images",
    "Matrix",
    "Spacing (mm)",
    "Vendor",
    "Patient ID",
    "Usable",
    "Problems",
]
PROBLEM_COLOUR = QColor("#ffe08a")  # imported, with remarks (limited: no SUV, one slice, incomplete)
UNUSABLE_COLOUR = QColor("#f5b7b1")  # will not be imported


def _series_cells(info: Any, verdict: SeriesVerdict) -> list[str]:
    spacing = getattr(info, "spacing", None)
    spacing_text = " × ".join(f"{s:.3g}" for s in spacing) if spacing else "?"
    return [
        display_of(info.modality) if info.modality in ("CT", "PT") else (info.modality or "?"),
        info.description or "",
        str(info.n_instances),
        matrix_text(info),
        spacing_text,
        info.manufacturer or "",
        info.patient_id or "?",  # on this screen only, to choose a patient; never stored
        verdict.word,
        "; ".join(verdict.reasons),
    ]


def describe_summary(summary: Any) -> str:
    """The import summary in words: what was imported, not imported and why, what failed."""
    imported = list(getattr(summary, "imported", []))
    skipped = list(getattr(summary, "skipped", []))
    errors = list(getattr(summary, "errors", []))
    files = list(getattr(summary, "files_skipped", []))
    lines = [
        f"Subject {getattr(summary, 'subject_code', '?')}: {len(imported)} series imported, "
        f"{len(skipped)} not imported, {len(errors)} failed."
    ]
    if imported:
        lines.append("Imported:")
        for s in imported:
            name = {"PT": "PET"}.get(s.modality, s.modality)
            text = f"  • {name} — {s.description or 'no description'}: {s.n_instances} images, {s.units}"
            if getattr(s, "suv_error", None):
                text += f" — no SUV: {s.suv_error}"
            lines.append(text)
            lines.extend(f"      ! {w}" for w in getattr(s, "warnings", []) or [])
    if skipped:
        lines.append("Not imported:")
        lines.extend(f"  • {n.label}: {n.reason}" for n in skipped)
    if errors:
        lines.append("Failed (nothing of these series was stored):")
        lines.extend(f"  • {n.label}: {n.reason}" for n in errors)
    if files:
        lines.append(
            f"{len(files)} file(s) were not images and were ignored (reports, structure sets, other files)."
        )
    return "\n".join(lines)


class ImportDialog(QDialog):
    """Modal-less dialog; emits `imported(subject_code)` after a successful import."""

    imported = Signal(str)
    scanned = Signal(int)  # number of series found
    progressed = Signal(object)  # each core Progress step of the scan or the import

    def __init__(
        self,
        store: Store,
        workers: WorkerPool,
        parent: QWidget | None = None,
        folder: str | Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import DICOM folder")
        self.resize(980, 620)
        self.store = store
        self.workers = workers
        self.scan_result: Any = None
        self.summary: Any = None
        self._import_thread: TaskThread | None = None

        self.folder = QLineEdit()
        self.folder.setPlaceholderText("Folder exported from the PACS (any layout, DICOMDIR optional)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.scan_button = QPushButton("Scan")
        self.scan_button.clicked.connect(self.scan)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        folder_row.addWidget(self.scan_button)

        self.series = QTableWidget(0, len(SERIES_COLUMNS))
        self.series.setHorizontalHeaderLabels(SERIES_COLUMNS)
        self.series.verticalHeader().setVisible(False)
        self.series.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.series.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.series.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(SERIES_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.scan_note = QLabel("Choose a folder to see what it contains before importing.")
        self.scan_note.setWordWrap(True)

        site = store.reader.site_code if store.reader else ""
        self.subject = QLineEdit(store.next_subject_code(site) if site and site != "XX00" else "")
        self.subject.setPlaceholderText("e.g. IT03-0017")
        self.subject.setToolTip("Pseudonym of this patient in the study: site code, dash, four digits.")
        self.patient = QComboBox()
        self.patient.setToolTip(
            "The folder holds images of several patients: choose whose to import (the ID stays at the site)."
        )
        self.patient_label = QLabel("Patient")
        form = QFormLayout()
        form.addRow(self.patient_label, self.patient)
        form.addRow("Subject code", self.subject)
        self._show_patients([])

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress_text = QLabel()
        self.import_button = QPushButton("Import")
        self.import_button.setEnabled(False)
        self.import_button.clicked.connect(self.start_import)
        self.cancel_button = QPushButton("Cancel import")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_import)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)

        self.summary_text = QPlainTextEdit()
        self.summary_text.setReadOnly(True)
        self.summary_text.setPlaceholderText("The import summary appears here.")
        self.summary_text.setMaximumHeight(160)

        layout = QVBoxLayout(self)
        layout.addLayout(folder_row)
        layout.addWidget(self.scan_note)
        layout.addWidget(self.series, 1)
        layout.addLayout(form)
        layout.addWidget(self.progress_text)
        layout.addLayout(buttons)
        layout.addWidget(self.summary_text)
        if folder:
            self.folder.setText(str(folder))
            self.scan()

    # ------------------------------------------------------------------ scan
    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "DICOM folder to import", self.folder.text())
        if chosen:
            self.folder.setText(chosen)
            self.scan()

    def scan(self) -> None:
        folder = Path(self.folder.text().strip()).expanduser()
        if not folder.is_dir():
            self.scan_note.setText(f"{folder} is not a folder.")
            self.scan_note.setStyleSheet("color: #c0392b;")
            return
        from palmares_desktop.core.series_verdict import iter_judge_folder

        self.scan_note.setStyleSheet("")
        self.scan_note.setText(f"Scanning {folder}…")
        self.series.setRowCount(0)
        self.scan_button.setEnabled(False)
        self.import_button.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until the first progress step gives a total
        self.workers.start(
            lambda: iter_judge_folder(folder),
            on_success=self._scanned,
            on_failure=self._scan_failed,
            on_progress=self._step,
            name="scan",
        )

    def _scan_failed(self, exc: Exception) -> None:
        self.scan_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.scan_note.setStyleSheet("color: #c0392b;")
        self.scan_note.setText(f"The folder could not be scanned: {exc}")

    def _scanned(self, judged: Any) -> None:
        result = judged.scan
        self.scan_result = result
        self.scan_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)  # the bar is for the import; the scan's outcome is the table
        self.progress_text.clear()
        self.series.setRowCount(len(result.series))
        for r, (info, verdict) in enumerate(zip(result.series, judged.verdicts, strict=True)):
            colour = {YES: None if not verdict.reasons else PROBLEM_COLOUR, NO: UNUSABLE_COLOUR}.get(
                verdict.word, PROBLEM_COLOUR
            )
            for c, text in enumerate(_series_cells(info, verdict)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if colour is not None:
                    item.setBackground(QBrush(colour))
                    item.setForeground(QBrush(QColor("#1b1b1b")))
                self.series.setItem(r, c, item)
        importable = [v for v in judged.verdicts if v.importable]
        ready = [v for v in judged.verdicts if v.word == YES]
        skipped = len(result.skipped)
        self.scan_note.setText(
            f"{len(result.series)} series found: {len(ready)} ready to read, "
            f"{len(importable) - len(ready)} limited (imported, see the remarks)"
            + (f"; {skipped} file(s) skipped (not images or unreadable)." if skipped else ".")
            + " Yellow rows have remarks, red rows will not be imported."
        )
        self.scan_note.setToolTip(
            "\n".join(f"{Path(path).name}: {reason}" for path, reason in result.skipped[:50])
        )
        self._show_patients(judged.patients)
        self.import_button.setEnabled(bool(importable))
        self.scanned.emit(len(result.series))

    def _show_patients(self, patients: list[str]) -> None:
        """A patient picker only when the folder holds more than one patient."""
        self.patient.clear()
        for patient_id in patients:
            self.patient.addItem(patient_id, patient_id)
        several = len(patients) > 1
        self.patient.setVisible(several)
        self.patient_label.setVisible(several)

    # ---------------------------------------------------------------- import
    def start_import(self) -> None:
        code = self.subject.text().strip().upper()
        try:
            check_subject_code(code)
        except StoreError as exc:
            self.progress_text.setStyleSheet("color: #c0392b;")
            self.progress_text.setText(str(exc))
            return
        from palmares_desktop.core.importer import iter_import_dicom

        folder = Path(self.folder.text().strip()).expanduser()
        root, reader = self.store.root, self.store.reader
        patient_id = self.patient.currentData() if self.patient.count() > 1 else None

        def job():
            # The import writes from this worker thread: it needs its own connection to the store.
            with worker_store(root, reader) as store:
                return (yield from iter_import_dicom(store, folder, code, patient_id=patient_id))

        self.progress_text.setStyleSheet("")
        self.progress_text.setText(f"Importing into {code}…")
        self.summary_text.clear()
        self.import_button.setEnabled(False)
        self.scan_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self._import_thread = self.workers.start(
            job,
            on_success=lambda s: self._imported(code, s),
            on_failure=self._import_failed,
            on_progress=self._step,
            on_cancel=self._import_cancelled,
            name="import",
        )

    def cancel_import(self) -> None:
        if self._import_thread is not None:
            self.progress_text.setText("Cancelling after the current step…")
            self.cancel_button.setEnabled(False)
            self._import_thread.cancel()

    def _step(self, step: Any) -> None:
        total = getattr(step, "total", 0) or 0
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(getattr(step, "done", 0), total))
        message = getattr(step, "message", "")
        if message:
            self.progress_text.setText(message)
        self.progressed.emit(step)

    def _finish(self) -> None:
        self._import_thread = None
        self.cancel_button.setEnabled(False)
        self.scan_button.setEnabled(True)
        self.import_button.setEnabled(self.scan_result is not None)
        self.progress.setRange(0, 1)

    def _imported(self, code: str, summary: Any) -> None:
        self._finish()
        self.summary = summary
        self.progress.setValue(1)
        self.progress_text.setText(f"Import into {code} finished.")
        self.summary_text.setPlainText(describe_summary(summary))
        if getattr(summary, "errors", None):
            self.progress_text.setStyleSheet("color: #c0392b;")
            self.progress_text.setText(f"Import into {code} finished with errors: see the summary.")
        self.imported.emit(code)

    def _import_failed(self, exc: Exception) -> None:
        self._finish()
        self.progress.setValue(0)
        self.progress_text.setStyleSheet("color: #c0392b;")
        self.progress_text.setText(f"The import failed: {exc}")
        self.summary_text.setPlainText(f"The import did not start or stopped: {exc}")

    def _import_cancelled(self) -> None:
        self._finish()
        self.progress.setValue(0)
        self.progress_text.setText(
            "Import cancelled. Series finished before the cancel stay in the store; importing the folder "
            "again adds the rest (series already imported are skipped)."
        )

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._import_thread is not None and self._import_thread.isRunning():
            self.cancel_import()
            self._import_thread.wait(30_000)
        super().closeEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Escape must not abandon a running import
        if event.key() == Qt.Key.Key_Escape and self._import_thread is not None:
            self.cancel_import()
            return
        super().keyPressEvent(event)

"""The CT/PET room's whole-body PET candidates: every region above a rule, hottest first, to review.

**Find** runs core's `subject_candidates` (the rule, and for PERCIST the liver reference the reader
placed with the threshold tool, else the subject's last PERCIST reference) in a worker. Selecting a
row jumps the views to the candidate's hottest voxel; **Accept** saves it as a lesion through core's
`accept_candidate` (a final PET version by the current reader, features follow); **Reject** sets it
aside for this review. Candidates touching the head or in the bladder are marked as likely
physiological: the reader decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.gui.tables import cell, read_only_table
from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

RULES = (("PERCIST (liver reference)", "percist"), ("SUV 2.5", "suv2.5"), ("SUV 4.0", "suv4.0"))
COLUMNS = ["#", "SUVmax", "MTV mL", "TLG", "Note", "Review"]


class PetCandidatesTool(QGroupBox):
    saved = Signal(dict)  # the segmentation row an accepted candidate became
    jump = Signal(tuple)  # world (z, y, x) mm of the selected candidate's hottest voxel
    listed = Signal(int)  # number of candidates found

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__("Whole-body PET candidates", parent)
        self.workers = workers
        self._context: Callable[[], tuple[Any, str, Any] | None] = lambda: None
        self.result = None  # core CandidateSet of the last Find
        self.subject_code: str | None = None
        self.review: dict[int, str] = {}  # rank -> "accepted as <lesion>" | "rejected"
        self.rule = QComboBox()
        for text, value in RULES:
            self.rule.addItem(text, value)
        self.find = QPushButton("Find")
        self.find.setToolTip("List every connected region above the rule in the whole PET, hottest first")
        self.find.clicked.connect(self.find_candidates)
        self.table = read_only_table(COLUMNS)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.itemSelectionChanged.connect(self._selected)
        self.accept = QPushButton("Accept as lesion")
        self.reject = QPushButton("Reject")
        self.accept.clicked.connect(self.accept_selected)
        self.reject.clicked.connect(self.reject_selected)
        self.message = QLabel("Find lists the PET's hot regions for review.")
        self.message.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.rule, 1)
        top.addWidget(self.find)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept)
        buttons.addWidget(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self._enable_review()

    def bind(self, context: Callable[[], tuple[Any, str, Any] | None]) -> None:
        """`context()` gives (store, subject code, liver reference (x, y, z) mm or None), or None."""
        self._context = context

    # ----------------------------------------------------------------- find
    def find_candidates(self) -> None:
        context = self._context()
        if context is None:
            self.message.setText("Open a subject with a PET first.")
            return
        store, code, liver = context
        rule, root = self.rule.currentData(), store.root
        self.message.setText("Looking for hot regions in the whole PET…")
        self.find.setEnabled(False)

        def job():
            from palmares_desktop.core.pet.subject_pet import subject_candidates
            from palmares_desktop.core.store import Store

            with Store.open(root, read_only=True) as reading:
                result, _ = subject_candidates(reading, code, rule, liver_at=liver)
            return code, result

        self.workers.start(job, on_success=self._show, on_failure=self._failed, name="pet candidates")

    def _show(self, found) -> None:
        code, result = found
        self.find.setEnabled(True)
        self.subject_code, self.result, self.review = code, result, {}
        self._fill()
        words = result.parameters.get("rule_words", "")
        self.message.setText(
            f"{len(result.candidates)} regions at or above SUV {result.threshold_suv:.2f} ({words}). "
            "Select one to see it; accept the lesions, reject the rest."
        )
        self.listed.emit(len(result.candidates))

    def _failed(self, exc: Exception) -> None:
        self.find.setEnabled(True)
        self.message.setText(str(exc))

    def _fill(self) -> None:
        candidates = self.result.candidates if self.result else []
        self.table.setRowCount(len(candidates))
        for row, c in enumerate(candidates):
            note = f"likely physiological ({c.likely_physiological})" if c.likely_physiological else ""
            texts = [str(c.rank), f"{c.suv_max:.2f}", f"{c.mtv_ml:.2f}", f"{c.tlg:.1f}", note]
            for column, text in enumerate([*texts, self.review.get(c.rank, "")]):
                self.table.setItem(row, column, cell(text))
        self._enable_review()

    # --------------------------------------------------------------- review
    def selected(self):
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.result is None:
            return None
        return self.result.candidates[rows[0].row()]

    def _selected(self) -> None:
        self._enable_review()
        candidate = self.selected()
        if candidate is not None:
            self.jump.emit(tuple(reversed(candidate.hottest_mm)))  # (x, y, z) LPS -> world (z, y, x)

    def _enable_review(self) -> None:
        candidate = self.selected()
        open_ = candidate is not None and candidate.rank not in self.review
        self.accept.setEnabled(open_)
        self.reject.setEnabled(open_)

    def reject_selected(self) -> None:
        candidate = self.selected()
        if candidate is not None:
            self.review[candidate.rank] = "rejected"
            self._refresh_row(candidate.rank)

    def accept_selected(self) -> None:
        candidate, context = self.selected(), self._context()
        if candidate is None or context is None or self.result is None:
            return
        store, code, _ = context
        if code != self.subject_code:
            self.message.setText("These candidates are of another subject: press Find again.")
            return
        if store.reader is None:
            self.message.setText(
                "Choose a reader first (Reader → Switch reader…): every segmentation has an author."
            )
            return
        result, rank, root, reader = self.result, candidate.rank, store.root, store.reader

        def job() -> dict:
            from palmares_desktop.core.pet.subject_pet import accept_candidate
            from palmares_desktop.core.store import records

            with worker_store(root, reader) as writing:
                saved = accept_candidate(writing, code, result, rank)
                lesion = records.lesion_row(writing, saved.lesion_id).name
            return {"segmentation_id": saved.id, "version": saved.version, "lesion": lesion}

        def done(row: dict) -> None:
            self.review[rank] = f"accepted as {row['lesion']}"
            self._refresh_row(rank)
            self.message.setText(f"Candidate {rank} saved as lesion {row['lesion']!r}.")
            self.saved.emit(row)

        self.accept.setEnabled(False)
        self.workers.start(job, on_success=done, on_failure=self._failed, name="accept candidate")

    def _refresh_row(self, rank: int) -> None:
        row = next(i for i, c in enumerate(self.result.candidates) if c.rank == rank)
        self.table.setItem(row, len(COLUMNS) - 1, cell(self.review[rank]))
        self._enable_review()

    def forget(self) -> None:
        """Another subject (or none) is open: its candidates are not this one's."""
        self.result, self.subject_code, self.review = None, None, {}
        self.table.setRowCount(0)
        self._enable_review()
        self.message.setText("Find lists the PET's hot regions for review.")

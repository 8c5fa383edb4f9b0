"""Study → Coordinating centre…: packages received per site, completeness per subject, open conflicts
with both versions side by side, and the Merge and Write table buttons (core/exchange).

Every number and decision is core's (coordination.py, merge.py, table.py); this room shows them,
runs merges and the table in worker threads with progress, and records the coordinator's choice of
version for a conflict through `resolve_conflict` (an audited row).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.store import Store
from palmares_desktop.gui.tables import cell, read_only_table
from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)

YES_COLOUR, NO_COLOUR = QColor("#d5f5e3"), QColor("#fadbd8")
COMPLETENESS = [("Site", "site"), ("Subject", "subject"), ("CT", "ct"), ("PET", "pet"), ("H&E", "he"),
                ("Features", "features"), ("Done", "done")]  # fmt: skip


class CoordinatorRoom(QDialog):
    """The coordinating centre's room over its central store."""

    refreshed = Signal()
    merged = Signal(object)  # core MergeResult
    table_written = Signal(object)  # (rows, columns)
    _merge_step = Signal(object)  # a core Outcome, emitted from the merge worker thread
    open_requested = Signal(object)  # core ConflictTarget: show that subject (and lesion) in its room

    def __init__(self, store: Store, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Coordinating centre")
        self.resize(1200, 760)
        self.store, self.workers = store, workers
        self.conflict_list: list[Any] = []

        self.merge_button = QPushButton("Merge packages…")
        self.merge_button.clicked.connect(lambda: self.merge())
        self.table_button = QPushButton("Write analysis table…")
        self.table_button.clicked.connect(lambda: self.write_table())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel()
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.merge_button)
        top.addWidget(self.table_button)
        top.addWidget(self.progress, 1)

        self.packages = read_only_table(["Site", "Package", "Exported", "Received", "Follows", "Rows"])
        self.completeness = read_only_table([t for t, _ in COMPLETENESS])
        self.conflicts = QListWidget()
        self.conflicts.currentRowChanged.connect(self._show_conflict)
        self.versions = read_only_table(["Column", "Version A", "Version B"])
        self.keep_a = QPushButton("Keep version A")
        self.keep_b = QPushButton("Keep version B")
        self.keep_a.clicked.connect(lambda: self.resolve("a"))
        self.keep_b.clicked.connect(lambda: self.resolve("b"))
        self.open_in_room = QPushButton("Open in its room")
        self.open_in_room.setToolTip(
            "Show the subject (and the lesion) of this conflict in the CT/PET or slide room"
        )
        self.open_in_room.clicked.connect(self.open_conflict)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(QLabel("Columns that differ (both versions are kept until you choose):"))
        right_layout.addWidget(self.versions, 1)
        keep = QHBoxLayout()
        keep.addWidget(self.keep_a)
        keep.addWidget(self.keep_b)
        keep.addWidget(self.open_in_room)
        right_layout.addLayout(keep)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.conflicts)
        split.addWidget(right)
        split.setSizes([380, 800])
        self.tabs = QTabWidget()
        self.tabs.addTab(self.packages, "Packages")
        self.tabs.addTab(self.completeness, "Completeness")
        self.tabs.addTab(split, "Conflicts")

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        self._merge_step.connect(self._merge_progressed)
        self.refresh()

    # ------------------------------------------------------------------ views
    def refresh(self) -> None:
        from palmares_desktop.core.exchange.coordination import (
            CoordinationError,
            completeness,
            conflicts,
            packages_by_site,
        )

        try:
            sites = packages_by_site(self.store)
            rows = completeness(self.store)
            self.conflict_list = conflicts(self.store)
        except CoordinationError as exc:
            self.status.setText(str(exc))
            for widget in (self.merge_button, self.table_button, self.keep_a, self.keep_b):
                widget.setEnabled(False)
            return
        packages = [(s.site, p) for s in sites for p in s.packages]
        self.packages.setRowCount(len(packages))
        for r, (site, p) in enumerate(packages):
            values = [
                site,
                p["id"][:8],
                p["exported_at"],
                p["received_at"],
                (p["since_id"] or "")[:8],
                p["rows"],
            ]
            for c, value in enumerate(values):
                self.packages.setItem(r, c, cell(value))
        self.completeness.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (_title, key) in enumerate(COMPLETENESS):
                value = row[key]
                if isinstance(value, bool):
                    self.completeness.setItem(
                        r, c, cell("yes" if value else "no", YES_COLOUR if value else NO_COLOUR)
                    )
                else:
                    self.completeness.setItem(r, c, cell(value))
        self.conflicts.clear()
        for c in self.conflict_list:
            item = QListWidgetItem(f"{c.label} (site {c.site}, {c.id[:8]}): {', '.join(c.differences())}")
            self.conflicts.addItem(item)
        self.tabs.setTabText(2, f"Conflicts ({len(self.conflict_list)})")
        if self.conflict_list:
            self.conflicts.setCurrentRow(0)
        else:
            self.versions.setRowCount(0)
        self._enable_keep()
        complete = sum(1 for r in rows if r["ct"] and r["pet"] and r["features"])
        self.status.setText(
            f"{len(sites)} sites, {len(packages)} packages, {len(rows)} subjects ({complete} with CT and PET "
            f"segmented and features computed), {len(self.conflict_list)} open conflicts."
        )
        self.refreshed.emit()

    def _enable_keep(self) -> None:
        chosen = 0 <= self.conflicts.currentRow() < len(self.conflict_list)
        self.keep_a.setEnabled(chosen)
        self.keep_b.setEnabled(chosen)
        self.open_in_room.setEnabled(chosen)

    def _show_conflict(self, index: int) -> None:
        self._enable_keep()
        if not 0 <= index < len(self.conflict_list):
            return
        c = self.conflict_list[index]
        columns = c.differences()
        self.versions.setRowCount(len(columns))
        for r, column in enumerate(columns):
            self.versions.setItem(r, 0, cell(column))
            self.versions.setItem(r, 1, cell(c.version_a.get(column)))
            self.versions.setItem(r, 2, cell(c.version_b.get(column)))

    # ---------------------------------------------------------------- actions
    def resolve(self, keep: str) -> None:
        from palmares_desktop.core.errors import PalmaresError
        from palmares_desktop.core.exchange.coordination import resolve_conflict

        index = self.conflicts.currentRow()
        if not 0 <= index < len(self.conflict_list):
            return
        c = self.conflict_list[index]
        try:
            resolve_conflict(self.store, c.id, keep)
        except PalmaresError as exc:
            self.status.setText(f"The conflict could not be resolved: {exc}")
            return
        self.refresh()
        self.status.setText(
            f"Conflict {c.id[:8]} resolved: version {keep.upper()} of {c.table} kept. " + self.status.text()
        )

    def open_conflict(self) -> None:
        """Ask the window to show the selected conflict's subject (and lesion) in its room."""
        from palmares_desktop.core.exchange.coordination import conflict_target

        index = self.conflicts.currentRow()
        if not 0 <= index < len(self.conflict_list):
            return
        target = conflict_target(self.store, self.conflict_list[index])
        if target is None:
            self.status.setText(
                "This conflict's row belongs to no subject: there is nothing to open in a room."
            )
            return
        self.status.setText(
            f"{target.subject_code} opened in the {'CT/PET' if target.room == 'ct-pet' else 'slide'} room; "
            "the columns that differ stay listed here until you keep one version."
        )
        self.open_requested.emit(target)

    def merge(self, paths: list[str | Path] | None = None) -> None:
        if paths is None:
            chosen, _ = QFileDialog.getOpenFileNames(self, "Site packages to merge")
            paths = chosen
        if not paths:
            return
        from palmares_desktop.core.exchange.merge import merge_files

        files, root, reader = [Path(p) for p in paths], self.store.root, self.store.reader

        def job():
            with worker_store(root, reader) as store:
                return merge_files(store, files, on_progress=self._merge_step.emit)

        self.progress.setRange(0, len(files))
        self.progress.setValue(0)
        self.merge_button.setEnabled(False)
        self.status.setText(f"Merging {len(files)} package(s)…")
        self.workers.start(job, on_success=self._merged, on_failure=self._failed, name="merge")

    def _merge_progressed(self, outcome: Any) -> None:
        self.progress.setValue(min(self.progress.value() + 1, self.progress.maximum()))
        self.status.setText(f"{outcome.path.name}: {outcome.status}")

    def _merged(self, result: Any) -> None:
        self.merge_button.setEnabled(True)
        self.progress.setValue(self.progress.maximum())
        self.refresh()
        lines = [
            f"{o.path.name}: {o.status}" + (f" ({o.reason})" if o.reason else "") for o in result.outcomes
        ]
        self.status.setText("Merge finished. " + "; ".join(lines))
        self.merged.emit(result)

    def write_table(self, out: str | Path | None = None) -> None:
        if out is None:
            out, _ = QFileDialog.getSaveFileName(
                self, "Analysis table", "palmares_table.parquet", "Parquet (*.parquet);;CSV (*.csv)"
            )
        if not out:
            return
        from palmares_desktop.core.exchange import table

        target, root = Path(out), self.store.root

        def job():
            with Store.open(root, read_only=True) as store:
                return table.write_table(store, target)

        self.progress.setRange(0, 0)
        self.table_button.setEnabled(False)
        self.status.setText(f"Writing the analysis table to {target}…")
        self.workers.start(
            job,
            on_success=lambda done: self._table_done(target, done),
            on_failure=self._failed,
            name="table",
        )

    def _table_done(self, target: Path, done: Any) -> None:
        self.table_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        rows, columns = done
        self.status.setText(f"Analysis table written to {target}: {rows} rows, {columns} columns.")
        self.table_written.emit(done)

    def _failed(self, exc: Exception) -> None:
        self.merge_button.setEnabled(True)
        self.table_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.status.setText(f"Stopped: {exc}")

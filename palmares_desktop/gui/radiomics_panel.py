"""Radiomics panel: the stored feature sets of one segmentation, their provenance, and a compute button.

The panel never computes a number: it reads `feature_sets` rows and asks core
(`compute_features_for_segmentation`) to compute in a worker thread, then re-reads the store.
"""

from __future__ import annotations

import logging
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.model import FeatureSet, Segmentation
from palmares_desktop.core.store import Store
from palmares_desktop.gui.workers import WorkerPool, worker_store

log = logging.getLogger(__name__)
ERROR_STYLE = "color: #c0392b; font-weight: bold;"


def feature_sets_for(store: Store, segmentation_id: str) -> list[FeatureSet]:
    from palmares_desktop.core.store.records import feature_sets_of

    return feature_sets_of(store, segmentation_id)


def _short(value: Any, length: int = 12) -> str:
    text = str(value or "")
    return text[:length] + "…" if len(text) > length else text


class RadiomicsPanel(QGroupBox):
    """Shows feature sets for the selected segmentation; 'Compute features' runs core in a worker."""

    computed = Signal(str)  # segmentation id, after a computation finished (ok or stored error)

    def __init__(self, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__("Radiomics", parent)
        self.workers = workers
        self.store: Store | None = None
        self.segmentation: Segmentation | None = None
        self._sets: list[FeatureSet] = []

        self.subject_line = QLabel("Select a lesion to see its features.")
        self.subject_line.setWordWrap(True)
        self.set_picker = QComboBox()
        self.set_picker.currentIndexChanged.connect(self._show_set)
        self.background_busy = False  # the room computes missing features of the open subject
        self.compute_button = QPushButton("Compute features")
        self.compute_button.setEnabled(False)
        self.compute_button.clicked.connect(self.compute)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter features…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.features = QTableWidget(0, 2)
        self.features.setHorizontalHeaderLabels(["Feature", "Value"])
        self.features.verticalHeader().setVisible(False)
        self.features.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.features.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.features.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.provenance = QTreeWidget()
        # Lists that scroll: they may shrink to a few rows, so the window still fits a 768-px screen.
        for listing in (self.features, self.provenance):
            listing.setMinimumHeight(3 * self.fontMetrics().height())
        self.provenance.setHeaderLabels(["Provenance", "Value"])
        self.provenance.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)

        features_tab = QWidget()
        features_layout = QVBoxLayout(features_tab)
        features_layout.setContentsMargins(0, 0, 0, 0)
        features_layout.addWidget(self.filter)
        features_layout.addWidget(self.features)
        self.tabs = QTabWidget()
        self.tabs.addTab(features_tab, "Features")
        self.tabs.addTab(self.provenance, "Provenance")

        top = QHBoxLayout()
        top.addWidget(self.set_picker, 1)
        top.addWidget(self.compute_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.subject_line)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)

    # --------------------------------------------------------------- showing
    def clear(self) -> None:
        self.segmentation = None
        self._sets = []
        self.subject_line.setText("Select a lesion to see its features.")
        self.set_picker.clear()
        self.status.clear()
        self.features.setRowCount(0)
        self.provenance.clear()
        self.compute_button.setEnabled(False)

    def show_segmentation(self, store: Store, segmentation: Segmentation) -> None:
        self.store = store
        self.segmentation = segmentation
        modality = {"CT": "CT", "PT": "PET"}.get(segmentation.series_modality or "", "")
        self.subject_line.setText(
            f"<b>{segmentation.lesion_name or '?'}</b> — {modality} segmentation "
            f"v{segmentation.version or 1} ({segmentation.method or 'unknown method'})"
        )
        self.compute_button.setEnabled(not self.background_busy)
        self.refresh()

    def refresh(self) -> None:
        if self.store is None or self.segmentation is None:
            return
        self._sets = feature_sets_for(self.store, self.segmentation.id)
        self.set_picker.blockSignals(True)
        self.set_picker.clear()
        for row in self._sets:
            mark = "" if row.ok else "  ⚠ failed"
            self.set_picker.addItem(f"{row.params_name or '?'} · {(row.created_at or '')[:16]}{mark}")
        self.set_picker.blockSignals(False)
        if self._sets:
            self.set_picker.setCurrentIndex(0)
            self._show_set(0)
        else:
            self.status.setStyleSheet("")
            self.status.setText(
                "Computing features in the background…"  # a lesion picked while the room computes
                if self.background_busy
                else "No features computed yet for this segmentation."
            )
            self.features.setRowCount(0)
            self.provenance.clear()

    def current_set(self) -> FeatureSet | None:
        index = self.set_picker.currentIndex()
        return self._sets[index] if 0 <= index < len(self._sets) else None

    def _show_set(self, index: int) -> None:
        row = self._sets[index] if 0 <= index < len(self._sets) else None
        self.features.setRowCount(0)
        self.provenance.clear()
        if row is None:
            return
        if not row.ok:
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(f"Extraction failed: {row.error or 'no reason recorded'}")
        else:
            self.status.setStyleSheet("")
            deviation = f" — deviation: {row.deviation}" if row.deviation else ""
            elapsed = row.elapsed_s
            took = f" in {elapsed:.1f} s" if isinstance(elapsed, (int, float)) else ""
            self.status.setText(f"Computed {(row.created_at or '')[:19]}{took}{deviation}")
        features = dict(row.features)
        self.features.setRowCount(len(features))
        for r, (name, value) in enumerate(sorted(features.items())):
            self.features.setItem(r, 0, QTableWidgetItem(name))
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            item = QTableWidgetItem(text)
            item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
            self.features.setItem(r, 1, item)
        self._apply_filter(self.filter.text())
        self._fill_provenance(row)

    def _fill_provenance(self, row: FeatureSet) -> None:
        summary = QTreeWidgetItem(["Feature set", ""])
        for key in (
            "params_name",
            "params_sha256",
            "image_sha256",
            "mask_sha256",
            "status",
            "error",
            "deviation",
            "created_at",
            "author_id",
            "id",
        ):
            if getattr(row, key):
                value = self._author(getattr(row, key)) if key == "author_id" else str(getattr(row, key))
                item = QTreeWidgetItem(["author" if key == "author_id" else key, value])
                item.setToolTip(1, str(getattr(row, key)))
                if key == "error":
                    item.setForeground(1, QColor("#c0392b"))
                summary.addChild(item)
        self.provenance.addTopLevelItem(summary)
        provenance = dict(row.provenance)
        self._add_tree(self.provenance.invisibleRootItem(), "Details", provenance)
        summary.setExpanded(True)

    def _author(self, reader_id: str) -> str:
        """Who computed it, by name (the id stays in the tooltip)."""
        if self.store is not None:
            for reader in self.store.readers():
                if reader.id == reader_id:
                    return f"{reader.name} ({reader.role}, {reader.site_code})"
        return reader_id

    def _add_tree(self, parent: QTreeWidgetItem, key: str, value: Any) -> None:
        # Opened by default: the top level, library versions and warnings (what a reviewer checks first).
        expand = parent is self.provenance.invisibleRootItem() or key in ("versions", "warnings")
        if isinstance(value, dict):
            item = QTreeWidgetItem([key, ""])
            parent.addChild(item)
            for k, v in value.items():
                self._add_tree(item, str(k), v)
            item.setExpanded(expand)
        elif isinstance(value, list):
            item = QTreeWidgetItem([key, f"{len(value)} items"])
            parent.addChild(item)
            for i, v in enumerate(value):
                self._add_tree(item, str(i), v)
            item.setExpanded(expand)
        else:
            item = QTreeWidgetItem([key, str(value)])
            item.setToolTip(1, str(value))
            parent.addChild(item)

    def _apply_filter(self, text: str) -> None:
        needle = text.lower()
        for r in range(self.features.rowCount()):
            name = self.features.item(r, 0).text().lower()
            self.features.setRowHidden(r, bool(needle) and needle not in name)

    # -------------------------------------------------------------- computing
    def compute(self) -> None:
        if self.store is None or self.segmentation is None:
            return
        root, reader, seg_id = self.store.root, self.store.reader, self.segmentation.id

        def job() -> dict:
            # Imported here: the radiomics engine (and pyradiomics) loads only when a user asks for it.
            from palmares_desktop.core.radiomics.store_features import compute_features_for_segmentation

            with worker_store(root, reader) as store:
                return compute_features_for_segmentation(store, seg_id)

        self.compute_button.setEnabled(False)
        self.compute_button.setText("Computing…")
        self.status.setStyleSheet("")
        self.status.setText("Computing features in the background…")
        self.workers.start(
            job,
            on_success=lambda _row: self._computed(seg_id),
            on_failure=lambda exc: self._compute_failed(seg_id, exc),
            name="radiomics",
        )

    def set_background_busy(self, busy: bool) -> None:
        """While the room computes the open subject's missing features, one computation at a time."""
        self.background_busy = busy
        self.compute_button.setEnabled(not busy and self.segmentation is not None)
        if busy and self.segmentation is not None and not self._sets:
            self.status.setStyleSheet("")
            self.status.setText("Computing features in the background…")
        if not busy:
            self.refresh()

    def _computed(self, seg_id: str) -> None:
        self.compute_button.setText("Compute features")
        self.compute_button.setEnabled(self.segmentation is not None)
        if self.segmentation is not None and self.segmentation.id == seg_id:
            self.refresh()
        self.computed.emit(seg_id)

    def _compute_failed(self, seg_id: str, exc: Exception) -> None:
        self.compute_button.setText("Compute features")
        self.compute_button.setEnabled(self.segmentation is not None)
        if self.segmentation is not None and self.segmentation.id == seg_id:
            self.status.setStyleSheet(ERROR_STYLE)
            self.status.setText(f"Features could not be computed: {exc}")

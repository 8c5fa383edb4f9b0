"""The worklist: one row per subject of the open store, with reading status per modality."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from qtpy.QtGui import QAction, QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

#: Store modality codes and the names readers use for them.
MODALITY_NAMES = {"CT": "CT", "PT": "PET", "HE": "H&E"}
STATUS_COLOURS = {
    "not started": QColor("#e9ecef"),
    "in progress": QColor("#ffe08a"),
    "done": QColor("#a8e6a3"),
}
COLUMNS = ["Subject", "Site", "Modalities", "CT", "PET", "H&E", "Reading round"]
STATUS_COLUMN_MODALITY = {3: "CT", 4: "PT", 5: "HE"}


class WorklistModel(QAbstractTableModel):
    """Rows of `Store.worklist()`; status cells are colour-coded, absent modalities show a dash."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[dict] = []

    def set_rows(self, rows: list[dict]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_at(self, row: int) -> dict:
        return self._rows[row]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        modality = STATUS_COLUMN_MODALITY.get(column)
        status = row["status"].get(modality) if modality else None
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return row.get("display") or row["code"]  # a blinded reading shows its case label
            if column == 6:
                return row.get("reading", "")
            if column == 1:
                return row["site_code"]
            if column == 2:
                return ", ".join(MODALITY_NAMES[m] for m in row["modalities"]) or "none"
            return status if status else "—"
        if role == Qt.ItemDataRole.BackgroundRole and status:
            return QBrush(STATUS_COLOURS.get(status, QColor("white")))
        if role == Qt.ItemDataRole.ForegroundRole and status:
            return QBrush(QColor("#1b1b1b"))  # readable on the pastel status colours in dark themes too
        if role == Qt.ItemDataRole.TextAlignmentRole and 3 <= column <= 5:
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ToolTipRole and modality:
            name = MODALITY_NAMES[modality]
            return f"{name}: {status}" if status else f"No {name} for this subject"
        return None


class WorklistPanel(QWidget):
    """Filter box + table. Emits `subject_activated(code)` on double-click or Enter."""

    subject_activated = Signal(str)
    status_change_requested = Signal(str, str, str)  # subject_id, modality, status

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = WorklistModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)  # match any column: code, site, modality or status

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter subjects (code, site, modality, status)…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.count = QLabel()
        self.open_button = QPushButton("Open subject")
        self.open_button.clicked.connect(self._open_selected)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setAlternatingRowColors(False)
        self.table.doubleClicked.connect(self._activated)
        self.table.activated.connect(self._activated)  # Enter key
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.count)
        top.addWidget(self.open_button)
        legend = QLabel(
            "Status: <span style='background:#e9ecef'>&nbsp;not started&nbsp;</span> "
            "<span style='background:#ffe08a'>&nbsp;in progress&nbsp;</span> "
            "<span style='background:#a8e6a3'>&nbsp;done&nbsp;</span> — double-click a subject to open it; "
            "right-click to change a status."
        )
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(legend)
        self.proxy.rowsInserted.connect(self._update_count)
        self.proxy.modelReset.connect(self._update_count)
        self.proxy.layoutChanged.connect(self._update_count)
        self.filter.textChanged.connect(self._update_count)

    def set_rows(self, rows: list[dict]) -> None:
        self.model.set_rows(rows)
        self._update_count()

    def visible_codes(self) -> list[str]:
        return [self.proxy.index(r, 0).data() for r in range(self.proxy.rowCount())]

    def _update_count(self, *_: Any) -> None:
        self.count.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} subjects")

    def _row_for(self, proxy_index: QModelIndex) -> dict:
        return self.model.row_at(self.proxy.mapToSource(proxy_index).row())

    def _activated(self, proxy_index: QModelIndex) -> None:
        if proxy_index.isValid():
            self.subject_activated.emit(self._row_for(proxy_index)["code"])

    def _open_selected(self) -> None:
        selected = self.table.selectionModel().selectedRows()
        index = selected[0] if selected else self.proxy.index(0, 0)
        self._activated(index)

    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        row = self._row_for(index)
        menu = QMenu(self)
        for modality in row["modalities"]:
            sub = menu.addMenu(f"{MODALITY_NAMES[modality]} status")
            for status in STATUS_COLOURS:
                action = QAction(status, sub)
                action.setCheckable(True)
                action.setChecked(row["status"].get(modality) == status)
                action.triggered.connect(
                    lambda _=False, m=modality, s=status: self.status_change_requested.emit(
                        row["subject_id"], m, s
                    )
                )
                sub.addAction(action)
        menu.exec(self.table.viewport().mapToGlobal(pos))

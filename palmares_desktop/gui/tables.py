"""Read-only result tables, as the study panel and the coordinator room show them."""

from __future__ import annotations

from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


def read_only_table(titles: list[str]) -> QTableWidget:
    """Rows selected whole, columns sized to their contents, the last one stretched."""
    table = QTableWidget(0, len(titles))
    table.setHorizontalHeaderLabels(titles)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    return table


def cell(text: object, colour: QColor | None = None) -> QTableWidgetItem:
    """A table item; on a pastel `colour`, with dark text (readable in dark themes too)."""
    item = QTableWidgetItem("" if text is None else str(text))
    if colour is not None:
        item.setBackground(QBrush(colour))
        item.setForeground(QBrush(QColor("#1b1b1b")))
    return item

"""Study → Reading rounds…: the coordinator's view of a round and its agreement, and a reader's readings.

Every number comes from core (core/study/report.py, core/agreement): this panel picks the round and
the robustness threshold, runs the report in a worker thread and shows it as tables and three
plots (Bland-Altman of volume and, for PET rounds, SUVmean; the ICC ranking with the Koo & Li
bands), which can be saved as PNG or PDF, and the tables as CSV or Parquet.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from palmares_desktop.core.modalities import display_of
from palmares_desktop.core.store import Store
from palmares_desktop.gui.tables import cell, read_only_table
from palmares_desktop.gui.workers import WorkerPool

log = logging.getLogger(__name__)

MASK_COLUMNS = [
    ("Lesion", "lesion", "{}"),
    ("Pair", "scope", "{}"),
    ("Reader A", "reader_a", "{}"),
    ("Reader B", "reader_b", "{}"),
    ("Dice", "dice", "{:.3f}"),
    ("Jaccard", "jaccard", "{:.3f}"),
    ("HD95 (mm)", "hd95_mm", "{:.1f}"),
    ("Volume A (mL)", "volume_a_ml", "{:.2f}"),
    ("Volume B (mL)", "volume_b_ml", "{:.2f}"),
    ("ΔV (mL)", "volume_difference_ml", "{:+.2f}"),
]
FEATURE_COLUMNS = [
    ("Scope", "scope", "{}"),
    ("ICC", "kind", "{}"),
    ("Feature", "feature", "{}"),
    ("Value", "icc", "{:.3f}"),
    ("95% CI low", "ci_low", "{:.3f}"),
    ("95% CI high", "ci_high", "{:.3f}"),
    ("Koo & Li", "band", "{}"),
    ("Robust", "robust", "{}"),
]
READING_COLUMNS = ["Round", "Case", "Status"]
KOO_LI = ((0.5, "#e74c3c"), (0.75, "#f39c12"), (0.9, "#27ae60"))  # poor | moderate | good | excellent


def _fill(table: QTableWidget, rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, (_title, key, fmt) in enumerate(columns):
            value = row.get(key)
            text = "n/a" if value is None else ("yes" if value is True else "no" if value is False else None)
            if text is None:
                text = fmt.format(value)
            table.setItem(r, c, cell(text))


def draw_agreement(figure: Figure, report: Any) -> None:
    """Bland-Altman of volume (and SUVmean for PET) and the ICC ranking, from the core report."""
    figure.clear()
    if report.modality == "HE":
        measures = [("area_mm2", "Area (mm²)")]
    else:
        measures = [("volume_ml", "Volume (mL)")] + (
            [("suv_mean", "SUVmean")] if report.modality == "PT" else []
        )
    axes = figure.subplots(1, len(measures) + 1)
    for ax, (measure, label) in zip(axes, measures, strict=False):
        ba = report.bland_altman(measure)
        ax.axhline(0.0, color="#bdc3c7", linewidth=0.8)  # perfect agreement
        ax.scatter(ba.means, ba.differences, s=18, color="#2c3e50")
        if ba.bias is not None:
            ax.axhline(ba.bias, color="#2980b9", label=f"bias {ba.bias:.3g}")
        if ba.sd is not None:
            for limit in (ba.lower_loa, ba.upper_loa):
                ax.axhline(limit, color="#7f8c8d", linestyle="--")
            ax.set_title(
                f"Bland-Altman, {label}\nlimits {ba.lower_loa:.3g} to {ba.upper_loa:.3g}", fontsize=9
            )
        else:
            ax.set_title(f"Bland-Altman, {label}", fontsize=9)
        ax.set_xlabel(f"mean of the two readers, {label}", fontsize=8)
        ax.set_ylabel(f"reader B − reader A, {label}", fontsize=8)
        ax.tick_params(labelsize=7)
    ranking = report.icc_ranking("ICC(2,1)")
    ax = axes[-1]
    shown = ranking[:25]
    colours = ["#27ae60" if f["robust"] else "#7f8c8d" for f in shown]  # robust at the chosen threshold
    ax.barh(range(len(shown)), [max(f["icc"], 0.0) for f in shown], color=colours)
    ax.set_yticks(range(len(shown)), [f["feature"].replace("original_", "")[:34] for f in shown], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    for threshold, colour in KOO_LI:
        ax.axvline(threshold, color=colour, linestyle=":", linewidth=1)
    for x, word in ((0.25, "poor"), (0.625, "moderate"), (0.825, "good"), (0.95, "exc.")):
        ax.text(x, -0.9, word, ha="center", va="bottom", fontsize=6, color="#555555")
    robust = sum(1 for f in ranking if f["robust"])
    ax.set_title(f"ICC(2,1), best {len(shown)} of {len(ranking)}; {robust} robust", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    figure.tight_layout()


class StudyPanel(QDialog):
    """Reading rounds of the open store: status, agreement report, plots, exports."""

    reported = Signal(object)  # the core RoundReport, after each computation

    def __init__(self, store: Store, workers: WorkerPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reading rounds")
        self.resize(1200, 760)
        self.store, self.workers = store, workers
        self.report: Any = None

        self.round = QComboBox()
        self.threshold = QComboBox()
        for value in (0.75, 0.90):
            self.threshold.addItem(f"robust at ICC ≥ {value:.2f}", value)
        self.compute_button = QPushButton("Compute agreement")
        self.compute_button.clicked.connect(self.compute)
        self.new_button = QPushButton("New round…")
        self.new_button.clicked.connect(self.new_round)
        self.close_button = QPushButton("Close round…")
        self.close_button.setToolTip("End the round: blinding is lifted for its readers.")
        self.close_button.clicked.connect(self.close_round)
        self.status = QLabel()
        self.status.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Round"))
        top.addWidget(self.round, 1)
        top.addWidget(self.threshold)
        top.addWidget(self.compute_button)
        top.addWidget(self.new_button)
        top.addWidget(self.close_button)

        self.masks = read_only_table([c[0] for c in MASK_COLUMNS])
        self.features = read_only_table([c[0] for c in FEATURE_COLUMNS])
        self.readings = read_only_table(READING_COLUMNS)
        self.figure = Figure(figsize=(11, 4.2), dpi=100)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.masks, "Masks")
        self.tabs.addTab(self.features, "Features (ICC)")
        self.tabs.addTab(self.canvas, "Plots")
        self.tabs.addTab(self.readings, "My readings")

        self.save_plots_button = QPushButton("Save plots (PNG/PDF)…")
        self.save_plots_button.clicked.connect(self.save_plots)
        self.save_report_button = QPushButton("Save report (CSV/Parquet)…")
        self.save_report_button.clicked.connect(self.save_report)
        for button in (self.save_plots_button, self.save_report_button):
            button.setEnabled(False)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.save_plots_button)
        bottom.addWidget(self.save_report_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(bottom)
        self.refresh()

    def refresh(self) -> None:
        """The store's rounds and the current reader's readings (blinded ones by case label)."""
        from palmares_desktop.core.store import rounds as round_rows
        from palmares_desktop.core.study.rounds import assignments_of

        self.round.clear()
        for row in round_rows.rounds(self.store):
            self.round.addItem(f"{row['name']} ({display_of(row['modality'])}, {row['status']})", row["name"])
        self.compute_button.setEnabled(self.round.count() > 0)
        self.close_button.setEnabled(self.round.count() > 0 and not self.store.read_only)
        self.new_button.setEnabled(not self.store.read_only)
        if self.round.count() == 0:
            self.status.setText("No reading round in this store yet: New round… defines one.")
        mine = assignments_of(self.store, reader_id=self.store.reader.id) if self.store.reader else []
        rows = [{"round": a.round_name, "case": a.label, "status": a.status} for a in mine]
        _fill(self.readings, rows, [(t, t.lower(), "{}") for t in READING_COLUMNS])

    def new_round(self) -> dict | None:
        """Define a round (the coordinator's dialog); the panel then shows it."""
        from palmares_desktop.gui.round_dialog import NewRoundDialog

        dialog = NewRoundDialog(self.store, self)
        self._round_dialog = dialog  # tests drive the open dialog
        if not dialog.exec() or dialog.created is None:
            return None
        self.refresh()
        self.round.setCurrentIndex(self.round.findData(dialog.created["name"]))
        self.status.setText(
            f"Round {dialog.created['name']!r} created; its readers see it in their worklist."
        )
        return dialog.created

    def close_round(self) -> None:
        from palmares_desktop.core.errors import PalmaresError
        from palmares_desktop.core.study.rounds import close_round

        name = self.round.currentData()
        answer = QMessageBox.question(
            self,
            "Close round",
            f"Close round {name!r}? Blinding is lifted: its readers may then see each other's work.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            close_round(self.store, name)
        except PalmaresError as exc:
            self.status.setText(f"The round could not be closed: {exc}")
            return
        self.refresh()
        self.round.setCurrentIndex(self.round.findData(name))
        self.status.setText(f"Round {name!r} is closed.")

    def compute(self) -> None:
        from palmares_desktop.core.study.report import round_report

        name, threshold, root = self.round.currentData(), self.threshold.currentData(), self.store.root

        def job():
            with Store.open(root, read_only=True) as store:
                return round_report(store, name, threshold)

        self.compute_button.setEnabled(False)
        self.status.setText(f"Computing the agreement of {name!r}…")
        self.workers.start(job, on_success=self._show, on_failure=self._failed, name="round report")

    def _show(self, report: Any) -> None:
        self.report = report
        self.compute_button.setEnabled(True)
        _fill(self.masks, report.pairs, MASK_COLUMNS)
        _fill(self.features, report.features, FEATURE_COLUMNS)
        draw_agreement(self.figure, report)
        self.canvas.draw()
        robust = "; ".join(f"{scope}: {len(names)} robust" for scope, names in report.robust.items())
        self.status.setText(
            f"{report.round_name}: {len(report.pairs)} reading pairs, {len(report.features)} feature ICCs"
            + (f" ({robust})" if robust else "")
            + ("" if not report.notes else ". " + " ".join(report.notes))
        )
        for button in (self.save_plots_button, self.save_report_button):
            button.setEnabled(True)
        self.reported.emit(report)

    def _failed(self, exc: Exception) -> None:
        self.compute_button.setEnabled(True)
        self.status.setText(f"The agreement could not be computed: {exc}")

    def save_plots(self, path: str | Path | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save plots", "agreement.png", "PNG (*.png);;PDF (*.pdf)"
            )
        if not path:
            return None
        path = Path(path)
        if path.suffix.lower() not in (".png", ".pdf"):
            self.status.setText("Save the plots as .png or .pdf.")
            return None
        self.figure.savefig(path, dpi=150)
        self.status.setText(f"Plots saved to {path}.")
        return path

    def save_report(self, path: str | Path | None = None) -> list[Path]:
        from palmares_desktop.core.study.report import write_report
        from palmares_desktop.core.study.rounds import RoundError

        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save report", "round.parquet", "Parquet (*.parquet);;CSV (*.csv)"
            )
        if not path:
            return []
        try:
            written = write_report(self.report, Path(path))
        except (RoundError, OSError) as exc:
            self.status.setText(f"The report could not be saved: {exc}")
            return []
        self.status.setText("Saved " + ", ".join(str(p) for p in written) + ".")
        return written

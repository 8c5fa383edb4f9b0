"""`palmares scan DIR [--json]`: list the DICOM series in a folder and what is wrong with them."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import click
from tqdm import tqdm

from palmares_desktop.core.dicom.discovery import ScanResult, SeriesInfo, iter_scan_folder
from palmares_desktop.core.dicom.errors import DicomError
from palmares_desktop.core.series_verdict import (
    LIMITED,
    NO,
    YES,
    SeriesVerdict,
    judge_all,
    matrix_text,
    patients_of,
)

_COLUMNS = ("#", "Mod", "Description", "Inst", "Matrix", "Spacing mm", "Thick", "FoR", "Vendor", "Usable")
_PATIENT = "Patient ID"
_PATHS_PER_REASON = 3


@click.command("scan")
@click.argument("folder", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object {series: [...], skipped: [...]}.")
def scan(folder: Path, as_json: bool) -> None:
    """List every DICOM series under FOLDER (searched recursively; any file names; no DICOMDIR
    needed): modality, description, instances, matrix, spacing, slice thickness, frame of
    reference, vendor, whether it can be read (yes, limited: e.g. no SUV, one slice or an incomplete
    export, or no), and each problem in words. Files that are not part of any volume are listed
    with the reason. Exit status is 0 even when problems are found. Patient names are never
    printed; when the folder holds several patients their IDs are shown (on this screen only,
    never stored), to choose one with `palmares import --patient-id`."""
    if not folder.is_dir():
        raise click.ClickException(
            f"{folder} is a file, not a folder: scan lists the DICOM series in a folder."
        )
    try:
        result = _run_with_progress(iter_scan_folder(folder))
    except DicomError as exc:
        raise click.ClickException(str(exc)) from exc
    verdicts = judge_all(result.series)
    several = len(patients_of(result.series)) > 1
    if as_json:
        report = result.to_dict()
        for entry, info, verdict in zip(report["series"], result.series, verdicts, strict=True):
            entry["verdict"] = verdict.to_dict()
            if several:
                entry["patient_id"] = info.patient_id
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_scan(result, verdicts, show_patients=several))


def _run_with_progress(task) -> ScanResult:
    # tqdm switches itself off when stderr is not a terminal (pipes, tests).
    with tqdm(file=sys.stderr, disable=None, unit="file", desc="scanning", leave=False) as bar:
        while True:
            try:
                step = next(task)
            except StopIteration as stop:
                return stop.value
            bar.total = step.total
            bar.n = step.done
            bar.refresh()


def format_scan(result: ScanResult, verdicts: list[SeriesVerdict], show_patients: bool = False) -> str:
    """The human-readable report: one table row per series, its remarks below it, then skipped files."""
    usable = sum(s.usable for s in result.series)
    words = [v.word for v in verdicts]
    lines = [
        f"{len(result.series)} series ({usable} usable as volumes: {words.count(YES)} ready to read, "
        f"{words.count(LIMITED)} limited), {len(result.skipped)} files skipped, in {result.root}",
        "",
    ]
    if show_patients:
        lines[1:1] = [
            f"The folder holds {len(patients_of(result.series))} patients: import one at a time with "
            "--patient-id ID (IDs shown here only; they are never stored).",
        ]
    if result.series:
        columns = (*_COLUMNS, _PATIENT) if show_patients else _COLUMNS
        rows = [
            _row(i, s, v) + ([s.patient_id or "?"] if show_patients else [])
            for i, (s, v) in enumerate(zip(result.series, verdicts, strict=True), start=1)
        ]
        widths = [max(len(str(c)) for c in column) for column in zip(columns, *rows, strict=False)]
        lines.append(_format_row(columns, widths))
        lines.append(_format_row(["-" * w for w in widths], widths))
        for verdict, row in zip(verdicts, rows, strict=True):
            lines.append(_format_row(row, widths))
            lines.extend(f"      - {reason}" for reason in verdict.reasons)
    if result.skipped:
        lines += ["", f"Skipped {len(result.skipped)} files:"]
        by_reason: dict[str, list[str]] = defaultdict(list)
        for path, reason in result.skipped:
            by_reason[reason].append(_relative(path, result.root))
        for reason, paths in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
            shown = ", ".join(paths[:_PATHS_PER_REASON])
            more = f" and {len(paths) - _PATHS_PER_REASON} more" if len(paths) > _PATHS_PER_REASON else ""
            lines.append(f"  {len(paths)} x {reason}: {shown}{more}")
    return "\n".join(lines)


def _row(number: int, s: SeriesInfo, verdict: SeriesVerdict) -> list[str]:
    spacing = "x".join(f"{v:.4g}" for v in s.spacing) if s.spacing else "?"
    instances = str(s.n_instances) if s.n_slices == s.n_instances else f"{s.n_instances} ({s.n_slices} fr)"
    description = s.description or "(no description)"
    if s.part:
        description += f" [part {s.part}]"
    return [
        str(number),
        s.modality or "?",
        _shorten(description, 32),
        instances,
        matrix_text(s, times="x"),
        spacing,
        f"{s.slice_thickness:g}" if s.slice_thickness is not None else "?",
        ("…" + s.frame_of_reference_uid[-8:]) if s.frame_of_reference_uid else "-",
        _shorten(s.manufacturer or "?", 16),
        verdict.word if verdict.word != NO else "NO",
    ]


def _format_row(cells, widths) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path

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

_COLUMNS = ("#", "Mod", "Description", "Inst", "Matrix", "Spacing mm", "Thick", "FoR", "Vendor", "Usable")
_PATHS_PER_REASON = 3


@click.command("scan")
@click.argument("folder", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object {series: [...], skipped: [...]}.")
def scan(folder: Path, as_json: bool) -> None:
    """List every DICOM series under FOLDER (searched recursively; any file names; no DICOMDIR
    needed): modality, description, instances, matrix, spacing, slice thickness, frame of
    reference, vendor, whether it loads as a volume, and each problem in words. Files that are
    not part of any volume are listed with the reason. Exit status is 0 even when problems are
    found. Patient names and IDs are never printed."""
    if not folder.is_dir():
        raise click.ClickException(
            f"{folder} is a file, not a folder: scan lists the DICOM series in a folder."
        )
    try:
        result = _run_with_progress(iter_scan_folder(folder))
    except DicomError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(format_scan(result))


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


def format_scan(result: ScanResult) -> str:
    """The human-readable report: one table row per series, its problems below it, then skipped files."""
    usable = sum(s.usable for s in result.series)
    lines = [
        f"{len(result.series)} series ({usable} usable as volumes), {len(result.skipped)} files skipped, "
        f"in {result.root}",
        "",
    ]
    if result.series:
        rows = [_row(i, s) for i, s in enumerate(result.series, start=1)]
        widths = [max(len(str(c)) for c in column) for column in zip(_COLUMNS, *rows, strict=False)]
        lines.append(_format_row(_COLUMNS, widths))
        lines.append(_format_row(["-" * w for w in widths], widths))
        for series, row in zip(result.series, rows, strict=True):
            lines.append(_format_row(row, widths))
            lines.extend(f"      - {problem}" for problem in series.problems)
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


def _row(number: int, s: SeriesInfo) -> list[str]:
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
        f"{s.rows}x{s.cols}",
        spacing,
        f"{s.slice_thickness:g}" if s.slice_thickness is not None else "?",
        ("…" + s.frame_of_reference_uid[-8:]) if s.frame_of_reference_uid else "-",
        _shorten(s.manufacturer or "?", 16),
        "yes" if s.usable else "NO",
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

"""`palmares suv DIR [--json]`: the SUV factors of every PET series in a folder, with their provenance."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("suv")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with a `series` list.")
def suv(folder: Path, as_json: bool) -> None:
    """SUVbw factor (per slice when they differ), the branch taken and every input, for each PET series in FOLDER.

    A series that cannot be converted is reported with the reason. Exit status (cli/exit_codes.py):
    0 when every PET series was evaluated, 3 when some were and some were refused, 1 when FOLDER does
    not exist, holds no PET series, or none could be evaluated.
    """
    from palmares_desktop.cli.exit_codes import PARTIAL
    from palmares_desktop.core.dicom.errors import DicomError
    from palmares_desktop.core.pet.folder import suv_for_folder

    if not folder.is_dir():
        raise click.ClickException(f"{folder} is not a folder.")
    try:
        entries = [series.to_dict() for series in suv_for_folder(folder)]
    except DicomError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"series": entries}, indent=2))
    else:
        for entry in entries:
            click.echo(_describe(entry))
    if not entries:
        raise click.ClickException(f"No PET series found in {folder}.")
    if all(entry["error"] for entry in entries):
        raise click.ClickException("No PET series could be evaluated (see the reasons above).")
    refused = sum(1 for entry in entries if entry["error"])
    if refused:
        click.echo(
            f"{refused} of {len(entries)} PET series could not be evaluated (see the reasons above).",
            err=True,
        )
        raise SystemExit(PARTIAL)


def _describe(entry: dict) -> str:
    """One human-readable block per PET series."""
    lines = [f"PET series {entry['series_uid']} ({entry['n_instances']} images)"]
    if entry["error"]:
        lines.append(f"  REFUSED: {entry['error']}")
    else:
        factors = entry["suvbw_factors"]
        if entry["suvbw_factor"] is not None:
            lines.append(f"  SUVbw factor: {entry['suvbw_factor']:.10g} (same for every image)")
        else:
            values = sorted(factors.values())
            lines.append(
                f"  SUVbw factor per image: {len(set(values))} values from {values[0]:.10g} to {values[-1]:.10g}"
                " (see --json for each SOPInstanceUID)"
            )
        for name, per_image in entry["other_factors"].items():
            values = sorted(per_image.values())
            shown = f"{values[0]:.6g}" if values[0] == values[-1] else f"{values[0]:.6g} .. {values[-1]:.6g}"
            unit = "cm²/mL" if name == "suvbsa" else "g/mL"
            lines.append(f"  {name} factor: {shown} ({unit})")
    if entry["method"]:
        lines.append(f"  method: {entry['method']}")
    for key, value in entry["inputs"].items():
        lines.append(f"  {key}: {_short(value)}")
    return "\n".join(lines) + "\n"


def _short(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)

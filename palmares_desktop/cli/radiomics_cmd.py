"""`palmares radiomics`: pyradiomics features of one image and mask, and the radiomics subcommands.

    palmares radiomics IMAGE MASK [--preset ct|pet|he | --params FILE] [--label N]
                                  [--format json|csv] [--out PATH]
    palmares radiomics extract IMAGE MASK ...      (the same, spelled out)
    palmares radiomics lock --store PATH ...       (the study's locked parameter files)
    palmares radiomics batch ...                   (whole store; cli/radiomics_batch_cmd.py)

`radiomics` is a click group whose first argument is either a subcommand name or, when it is
not one, the IMAGE of the default `extract` command. Heavy modules (SimpleITK, pyradiomics) are
imported only inside the commands, so `palmares --help` and the other commands stay fast.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import sys
from pathlib import Path
from typing import Any

import click

from palmares_desktop.cli.lazy import LazyGroup
from palmares_desktop.cli.options import modality_option
from palmares_desktop.cli.reader_option import reader_option
from palmares_desktop.core import modalities
from palmares_desktop.core.radiomics.errors import RadiomicsError
from palmares_desktop.core.radiomics.params import LOCK_MODES, PRESETS

# Subcommands defined in other modules, imported only when used: name -> "module:attribute".
LAZY_SUBCOMMANDS = {"batch": "palmares_desktop.cli.radiomics_batch_cmd:batch"}
DEFAULT_SUBCOMMAND = "extract"


class DefaultCommandGroup(LazyGroup):
    """A group that runs `extract` when its first argument is not a subcommand name.

    So `palmares radiomics IMAGE MASK --preset ct` and `palmares radiomics batch ...` both work.
    An image file that happens to be named like a subcommand can be given as `./batch`.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in ctx.help_option_names and self.get_command(ctx, args[0]) is None:
            first = args[0]
            if not first.startswith("-") and not Path(first).exists():
                close = difflib.get_close_matches(first, self.list_commands(ctx), n=1)
                if close:
                    raise click.UsageError(
                        f"{first!r} is neither a subcommand nor an existing image. Did you mean {close[0]!r}?",
                        ctx,
                    )
            args = [DEFAULT_SUBCOMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "IMAGE MASK [OPTIONS]")
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", prefix="   or: ")


@click.group("radiomics", cls=DefaultCommandGroup, lazy_subcommands=LAZY_SUBCOMMANDS, no_args_is_help=True)
def radiomics() -> None:
    """Radiomics features (pyradiomics) with provenance.

    \b
    palmares radiomics IMAGE MASK --preset ct        features as JSON on stdout
    palmares radiomics IMAGE MASK --params my.yaml --label 2 --format csv --out f.csv

    IMAGE: NIfTI, NRRD, or a DICOM series folder (PET folders are converted to SUV). MASK: a
    label map on the exact image grid. See `palmares radiomics extract --help` for the options.
    """


@radiomics.command(DEFAULT_SUBCOMMAND)
@click.argument("image", type=click.Path(path_type=Path))
@click.argument("mask", type=click.Path(path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(PRESETS, case_sensitive=False),
    help="Study parameter file: ct (HU), pet (SUV) or he (hematoxylin channel).",
)
@click.option(
    "--params",
    "params_file",
    type=click.Path(path_type=Path),
    help="A pyradiomics parameter file (.yaml/.yml/.json) instead of a preset.",
)
@click.option(
    "--label",
    type=click.IntRange(min=1),
    default=None,
    help="Label value of the region in MASK (default: the parameter file's label, usually 1).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="json: one object; csv: two columns key,value.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
def extract(
    image: Path,
    mask: Path,
    preset: str | None,
    params_file: Path | None,
    label: int | None,
    fmt: str,
    out: Path | None,
) -> None:
    """Features of the region LABEL of MASK over IMAGE (`extract` may be omitted)."""
    if preset and params_file:
        raise click.UsageError("Give either --preset or --params, not both.")
    if not preset and not params_file:
        raise click.UsageError("Choose the parameters: --preset ct|pet|he or --params FILE.")
    from palmares_desktop.core.radiomics.extract import extract_features, read_image
    from palmares_desktop.core.radiomics.images import read_mask
    from palmares_desktop.core.radiomics.params import load_params

    try:
        params = load_params(preset.lower() if preset else params_file)
        image_data = read_image(image, "image")
        region = int(label if label is not None else params.setting("label", 1))
        result = extract_features(image_data, read_mask(mask, image_data, region), params, region)
    except RadiomicsError as exc:
        raise click.ClickException(str(exc)) from None
    text = to_json(result.to_dict()) if fmt == "json" else to_csv(result.to_dict())
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"Cannot write {out}: {exc.strerror}.") from None
    click.echo(
        f"Wrote {len(result.values)} features of label {result.provenance['label']} to {out}.", err=True
    )


def to_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, allow_nan=False) + "\n"


def to_csv(record: dict[str, Any]) -> str:
    """Two columns key,value: pyradiomics keys, then `provenance.<path>` rows for the provenance.

    Numbers are written with full precision; lists and mappings as JSON; missing (NaN) as empty.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["key", "value"])
    for key, value in _flatten(record):
        writer.writerow([key, _cell(value)])
    return buffer.getvalue()


def _flatten(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if (key == "provenance" or prefix) and isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


# ------------------------------------------------------------------------------------------ lock
@radiomics.command("lock")
@click.option(
    "--store",
    "store_path",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The study store.",
)
@modality_option(required=False, help="Which modality's parameter file to lock or unlock.")
@click.option("--preset", type=click.Choice(PRESETS, case_sensitive=False), help="Lock this study preset.")
@click.option("--params", "params_file", type=click.Path(path_type=Path), help="Lock this parameter file.")
@click.option(
    "--mode",
    type=click.Choice(LOCK_MODES),
    default=None,
    help="record: other files allowed, stored as a deviation; refuse: other files refused.",
)
@click.option("--unlock", is_flag=True, help="Remove the lock of --modality.")
@reader_option
def lock(
    store_path: Path,
    modality: str | None,
    preset: str | None,
    params_file: Path | None,
    mode: str | None,
    unlock: bool,
    reader_name: str | None,
) -> None:
    """Lock the study's parameter file per modality, or show the locks (no --modality)."""
    if not modality and (unlock or preset or params_file):
        # Otherwise the locks would just be shown and the user left believing the change was made.
        raise click.UsageError("Say which modality to lock or unlock: --modality ct, pet or he.")
    from palmares_desktop.cli.reader_option import choose_reader
    from palmares_desktop.core.radiomics import params as P
    from palmares_desktop.core.store import Store, StoreError
    from palmares_desktop.core.store.records import store_site

    try:
        changes = bool(modality or mode)  # showing the locks writes nothing and records no author
        with Store.open(store_path, create=False, read_only=not changes) as store:
            if changes:
                choose_reader(store, reader_name, store_site(store))
            if modality:
                if unlock:
                    P.unlock_params(store, modality)
                elif preset or params_file:
                    if preset and params_file:
                        raise click.UsageError("Give either --preset or --params, not both.")
                    P.lock_params(
                        store, modality, P.load_params(preset.lower() if preset else params_file), mode
                    )
                else:
                    raise click.UsageError("Say what to lock with --preset or --params (or use --unlock).")
            elif mode:
                P.set_lock_mode(store, mode)
            for code in modalities.CODES:
                locked = P.locked_params(store, code)
                state = f"{locked.name} (sha256 {locked.sha256})" if locked else "not locked"
                click.echo(f"{modalities.display_of(code)}: {state}")
            click.echo(f"mode: {P.lock_mode(store)}")
    except (RadiomicsError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None

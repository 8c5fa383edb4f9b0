"""Option types shared by every command, so one word means one thing everywhere.

`--modality` takes ct, pet or he (and DICOM's `pt` for old scripts); `--site` is always the centre
(a site code such as IT03) and `--lesion-site` the anatomical site of a lesion.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from palmares_desktop.core import modalities
from palmares_desktop.core.errors import PalmaresError


class ModalityWord(click.ParamType):
    """ct | pet | he on the command line; the value passed on is the store's code (CT, PT, HE)."""

    name = "modality"

    def __init__(self, allowed: tuple[str, ...] = modalities.CODES) -> None:
        self.allowed = allowed

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(modalities.WORDS[c] for c in self.allowed) + "]"

    def convert(self, value, param, ctx) -> str:
        if value in self.allowed:
            return value
        try:
            code = modalities.code_of(str(value))
        except modalities.ModalityError:
            code = None
        if code not in self.allowed:
            words = ", ".join(modalities.WORDS[c] for c in self.allowed)
            self.fail(f"{value!r} is not one of {words}.", param, ctx)
        return code


def modality_option(*allowed: str, required: bool = True, help: str):
    """`--modality` limited to `allowed` store codes (default all)."""
    return click.option(
        "--modality", required=required, type=ModalityWord(tuple(allowed) or modalities.CODES), help=help
    )


def _site_is_the_centre(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.BadParameter(
            "--site is the centre (as in `palmares import`); for the lesion's anatomical site use "
            f"--lesion-site {value!r}.",
            ctx,
            param,
        )


lesion_site_option = click.option(
    "--lesion-site",
    "lesion_site",
    default=None,
    help="Anatomical site of the lesion, e.g. liver, bone, lymph node.",
)
# Before this wave `--site` meant the anatomical site here: say what to use instead of guessing.
retired_site_option = click.option(
    "--site", hidden=True, expose_value=False, callback=_site_is_the_centre, is_eager=False
)


def point(ctx, param, value: str | None):
    """Click callback: X,Y,Z in mm (patient LPS) -> a 3-tuple of floats."""
    if value is None:
        return None
    parts = value.replace(" ", "").split(",")
    try:
        point = tuple(float(p) for p in parts)
    except ValueError:
        point = ()
    if len(point) != 3:
        raise click.BadParameter(f"{value!r} is not a point X,Y,Z in mm (three numbers separated by commas).")
    return point


def store_option(f):
    return click.option(
        "--store",
        "store_path",
        type=click.Path(path_type=Path),
        default=None,
        help="Store folder (default: the user's store).",
    )(f)


def plain_errors(f):
    """A refusal from core (no such subject, no liver reference, ...) is one sentence, exit code 1."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except PalmaresError as exc:
            raise click.ClickException(exc.sentence) from None

    return wrapper


def region_options(f):
    """--box-mm / --sphere-mm: the region a threshold tool works in around its point."""
    f = click.option(
        "--sphere-mm", type=float, default=None, help="Use a sphere region of this diameter in mm instead."
    )(f)
    return click.option(
        "--box-mm", type=float, default=None, help="Edge of the box region in mm (default 60)."
    )(f)


def region_choice(box_mm: float | None, sphere_mm: float | None) -> tuple[str, float]:
    """(shape, size mm) from --box-mm / --sphere-mm (a 60 mm box by default)."""
    if box_mm is not None and sphere_mm is not None:
        raise click.UsageError("Give --box-mm or --sphere-mm, not both.")
    return ("sphere", sphere_mm) if sphere_mm is not None else ("box", box_mm or 60.0)


def new_lesion_options(default_name: str):
    """--lesion / --lesion-site for a tool that saves its result as a lesion (new or existing)."""

    def decorate(f):
        f = retired_site_option(f)
        f = lesion_site_option(f)
        return click.option(
            "--lesion", default=None, help=f"Lesion name (created if new; default '{default_name}')."
        )(f)

    return decorate


def echo_report(report: dict, lines: list[str], as_json: bool) -> None:
    """A tool's result: one JSON object, or its first sentence and the rest indented under it."""
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    first, *rest = lines
    click.echo(first)
    for line in rest:
        click.echo(f"  {line}")

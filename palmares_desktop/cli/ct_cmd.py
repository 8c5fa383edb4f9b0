"""`palmares ct threshold | grow`: the CT segmentation tools of the CT/PET room, headless.

Points are patient coordinates in mm (DICOM LPS), written X,Y,Z (e.g. --at -26,-18,-206); HU
ranges LO,HI (e.g. --hu -100,49). Clean-up of any lesion is `palmares segmentation clean`.
"""

from __future__ import annotations

import click

from palmares_desktop.cli.options import (
    echo_report,
    new_lesion_options,
    plain_errors,
    point,
    region_choice,
    region_options,
    store_option,
)
from palmares_desktop.cli.reader_option import open_store_as_reader, reader_option


def _hu_range(ctx, param, value: str | None):
    if value is None:
        return None
    parts = value.replace(" ", "").split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an HU range LO,HI (two numbers separated by a comma)."
        ) from None
    if lo > hi:
        raise click.BadParameter(f"{value!r} is empty: give the lower bound first, e.g. {hi:g},{lo:g}.")
    return lo, hi


def _smooth_option(f):
    return click.option(
        "--smooth-mm",
        type=float,
        default=0.0,
        show_default=True,
        help="Smooth the HU with a Gaussian of this standard deviation (mm) first; soft-tissue lesions "
        "whose contrast is close to the CT noise need about 1 mm.",
    )(f)


@click.group("ct")
def ct() -> None:
    """CT segmentation (HU threshold, region growing)."""


@ct.command("threshold")
@store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT99-0003.")
@click.option("--at", "at", required=True, callback=point, help="Centre of the region, X,Y,Z mm (LPS).")
@click.option("--hu", "hu", required=True, callback=_hu_range, help="HU range kept, LO,HI (inclusive).")
@region_options
@click.option(
    "--seed-at",
    callback=point,
    default=None,
    help="Keep the component of this voxel (default: the largest component in the region).",
)
@_smooth_option
@new_lesion_options("CT lesion N")
@reader_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@plain_errors
def threshold(
    store_path,
    subject,
    at,
    hu,
    box_mm,
    sphere_mm,
    seed_at,
    smooth_mm,
    lesion,
    lesion_site,
    reader_name,
    as_json,
):
    """Keep the CT voxels of an HU range in a region around --at, saved as a lesion's CT segmentation."""
    from palmares_desktop.core.ct.subject_ct import ct_lines, ct_report, ct_threshold_lesion

    shape, size = region_choice(box_mm, sphere_mm)
    with open_store_as_reader(store_path, subject, reader_name, as_json) as store:
        saved, result = ct_threshold_lesion(
            store, subject, at, hu[0], hu[1], size, shape, seed_at, lesion, lesion_site, smooth_mm
        )
        report = ct_report(store, subject, saved, result)
    echo_report(report, ct_lines(report), as_json)


@ct.command("grow")
@store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT99-0003.")
@click.option("--seed-at", required=True, callback=point, help="The seed, X,Y,Z mm (LPS), inside the lesion.")
@click.option(
    "--tolerance-hu",
    required=True,
    type=float,
    help="Keep voxels within this many HU of the mean of the seed's 3x3x3 neighbourhood.",
)
@click.option(
    "--max-radius-mm",
    type=float,
    default=40.0,
    show_default=True,
    help="Grow only inside a sphere of this radius around the seed.",
)
@_smooth_option
@new_lesion_options("CT lesion N")
@reader_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@plain_errors
def grow(
    store_path,
    subject,
    seed_at,
    tolerance_hu,
    max_radius_mm,
    smooth_mm,
    lesion,
    lesion_site,
    reader_name,
    as_json,
):
    """Grow a region from --seed-at over similar HU, saved as a lesion's CT segmentation."""
    from palmares_desktop.core.ct.subject_ct import ct_grow_lesion, ct_lines, ct_report

    with open_store_as_reader(store_path, subject, reader_name, as_json) as store:
        saved, result = ct_grow_lesion(
            store, subject, seed_at, tolerance_hu, max_radius_mm, lesion, lesion_site, smooth_mm
        )
        report = ct_report(store, subject, saved, result)
    echo_report(report, ct_lines(report), as_json)

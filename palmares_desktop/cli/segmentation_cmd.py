"""`palmares segmentation add | export | clean`: a label map made elsewhere becomes a lesion's
segmentation version; every lesion exported; one clean-up of a lesion's mask saved as its next version."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.options import (
    echo_report,
    lesion_site_option,
    modality_option,
    retired_site_option,
    store_option,
)
from palmares_desktop.cli.reader_option import choose_reader, open_store_as_reader, reader_option
from palmares_desktop.core.modalities import display_of
from palmares_desktop.core.paths import default_store_path


@click.group("segmentation")
def segmentation() -> None:
    """Segmentations (lesion masks) in a store."""


@segmentation.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT03-0017.")
@modality_option("CT", "PT", help="The image the mask was drawn on: the subject's CT or PET (SUV) series.")
@click.option(
    "--label",
    default=1,
    show_default=True,
    type=int,
    help="Label value in a NIfTI/NRRD map, or segment number in a DICOM SEG.",
)
@click.option(
    "--lesion",
    default=None,
    help="Lesion name (created if new; default: the SEG segment label, else 'mask <hash> label N').",
)
@lesion_site_option
@retired_site_option
@click.option(
    "--series",
    "series_id",
    default=None,
    help="Series id (or its first 8 characters) when the subject has several series of that modality "
    "(default: the newest study's, latest import; the command names the others).",
)
@click.option("--method", default="imported", show_default=True, help="How the mask was made (stored).")
@click.option(
    "--features/--no-features",
    default=True,
    show_default=True,
    help="Compute the radiomics features of the new version right away (study preset or lock).",
)
@reader_option
def add(
    file: Path,
    store_path: Path | None,
    subject: str,
    modality: str,
    label: int,
    lesion: str | None,
    lesion_site: str | None,
    series_id: str | None,
    method: str,
    features: bool,
    reader_name: str | None,
) -> None:
    """Add FILE (NIfTI, NRRD or DICOM SEG) as a new segmentation version of a lesion.

    The mask must lie on the exact voxel grid of the subject's CT or PET volume; it is refused
    otherwise, with both geometries in the message. Exit status 3 when the version is saved but
    its features could not be computed (the reason is stored and printed).
    """
    from palmares_desktop.core.radiomics.errors import RadiomicsError
    from palmares_desktop.core.radiomics.store_features import compute_features_for_segmentation
    from palmares_desktop.core.segmentation.labelmaps import SegmentationError, add_segmentation
    from palmares_desktop.core.series_choice import choose_series, describe
    from palmares_desktop.core.store import Store, StoreError, records

    try:
        with Store.open(store_path or default_store_path(), create=False) as store:
            choose_reader(
                store, reader_name, subject.split("-")[0] if "-" in subject else None, "radiologist"
            )
            saved = add_segmentation(
                store,
                subject,
                modality,
                file,
                label=label,
                lesion_name=lesion,
                organ=lesion_site,
                method=method,
                parameters={"source_label": label},
                series_id=series_id,
            )
            stored_lesion = records.lesion_row(store, saved.lesion_id)
            choice = choose_series(store, stored_lesion.subject_id, modality, saved.series_id)
            feature_row, feature_problem = None, None
            if features:
                try:
                    feature_row = compute_features_for_segmentation(store, saved.id)
                except RadiomicsError as exc:  # e.g. the study refuses these parameters: the mask stays
                    feature_problem = str(exc)
    except (SegmentationError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{subject} {display_of(modality)}: lesion {stored_lesion.name!r}"
        f"{' (' + stored_lesion.organ + ')' if stored_lesion.organ else ''}, segmentation version "
        f"{saved.version}: {saved.voxel_count} voxels, {saved.volume_ml:.2f} mL (id {saved.id})."
    )
    if choice is not None and choice.alternatives:
        others = ", ".join(describe(s) for s in choice.alternatives)
        click.echo(
            f"Attached to {describe(choice.chosen)}; other {display_of(modality)} series: {others} (--series)."
        )
    if feature_problem:
        click.echo(f"The segmentation is saved, but its features were not computed: {feature_problem}")
    if feature_row is not None:
        if feature_row["status"] == "ok":
            n = len(records.feature_values(feature_row))
            click.echo(f"Radiomics ({feature_row['params_name']}): {n} features stored.")
        else:
            click.echo(
                f"Radiomics ({feature_row['params_name']}) failed, stored with its reason: {feature_row['error']}"
            )
    if feature_problem or (feature_row is not None and feature_row["status"] != "ok"):
        sys.exit(exit_codes.PARTIAL)  # the version is saved, the features asked for are not


@segmentation.command("export")
@store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT03-0017.")
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["seg", "nifti", "nrrd"], case_sensitive=False),
    help="seg: one DICOM SEG per series (a segment per lesion); nifti/nrrd: one label map per lesion and series.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder to write to.")
@click.option("--lesion", default=None, help="Export only this lesion (default: every lesion).")
def export(store_path: Path | None, subject: str, fmt: str, out_dir: Path, lesion: str | None) -> None:
    """Export the latest final segmentation of every lesion of SUBJECT, with segmentations.json."""
    from palmares_desktop.core.segmentation.export import export_subject
    from palmares_desktop.core.segmentation.labelmaps import SegmentationError
    from palmares_desktop.core.store import Store, StoreError

    try:
        with Store.open(store_path or default_store_path(), create=False) as store:
            written = export_subject(store, subject, fmt, out_dir, lesion)
    except (SegmentationError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in written:
        click.echo(str(path))
    click.echo(f"{len(written)} files written to {out_dir} (see segmentations.json).")


_CLEAN_OPERATIONS = {
    "fill_holes": "fill-holes",
    "remove_islands": "remove-islands",
    "grow_mm": "grow",
    "shrink_mm": "shrink",
    "union": "union",
    "intersect": "intersect",
    "subtract": "subtract",
    "interpolate": "interpolate",
}


@segmentation.command("clean")
@store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT03-0017.")
@click.option("--lesion", required=True, help="The lesion to clean up (its version in use on that series).")
@modality_option("CT", "PT", help="Which of the lesion's masks: the one on the subject's CT or PET.")
@click.option("--fill-holes", is_flag=True, help="Fill the background the mask encloses (3D).")
@click.option("--per-slice", is_flag=True, help="With --fill-holes: fill on each axial slice separately.")
@click.option("--remove-islands", is_flag=True, help="Keep the largest connected part (26-connectivity).")
@click.option(
    "--min-ml",
    type=float,
    default=None,
    help="With --remove-islands: keep every part of at least this volume.",
)
@click.option(
    "--grow-mm", type=float, default=None, help="Grow by this distance in mm (a ball on the spacing)."
)
@click.option("--shrink-mm", type=float, default=None, help="Shrink by this distance in mm.")
@click.option("--union", default=None, metavar="LESION", help="Add the mask of this lesion (same series).")
@click.option(
    "--intersect", default=None, metavar="LESION", help="Keep only what this lesion's mask also covers."
)
@click.option("--subtract", default=None, metavar="LESION", help="Remove what this lesion's mask covers.")
@click.option(
    "--interpolate", is_flag=True, help="Fill the empty axial slices between drawn ones (shape-based)."
)
@click.option(
    "--series",
    "series_id",
    default=None,
    help="Series id when the subject has several series of that modality (default: as `add`).",
)
@reader_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def clean(
    store_path: Path | None,
    subject: str,
    lesion: str,
    modality: str,
    per_slice: bool,
    min_ml: float | None,
    series_id: str | None,
    reader_name: str | None,
    as_json: bool,
    **operations,
) -> None:
    """Apply one clean-up to a lesion's mask and save the result as its next segmentation version.

    Exactly one of --fill-holes, --remove-islands, --grow-mm, --shrink-mm, --union, --intersect,
    --subtract, --interpolate. Refused in words (exit status 1) when the lesion has no final mask on
    that series, the other lesion is on another grid, or the result would be empty.
    """
    from palmares_desktop.core.errors import PalmaresError
    from palmares_desktop.core.segmentation.lesion_cleanup import clean_lesion, clean_lines, clean_report

    chosen = [name for name, value in operations.items() if value is not None and value is not False]
    if len(chosen) != 1:
        flags = ", ".join("--" + name.replace("_", "-") for name in _CLEAN_OPERATIONS)
        given = ", ".join("--" + name.replace("_", "-") for name in chosen)
        raise click.UsageError(f"Give exactly one of {flags}" + (f" (given: {given})." if chosen else "."))
    (name,) = chosen
    operation, value = _CLEAN_OPERATIONS[name], operations[name]
    if per_slice and operation != "fill-holes":
        raise click.UsageError("--per-slice goes with --fill-holes.")
    if min_ml is not None and operation != "remove-islands":
        raise click.UsageError("--min-ml goes with --remove-islands.")
    try:
        with open_store_as_reader(store_path, subject, reader_name, as_json) as store:
            saved, result = clean_lesion(
                store,
                subject,
                lesion,
                modality,
                operation,
                mm=value if operation in ("grow", "shrink") else None,
                other_lesion=value if operation in ("union", "intersect", "subtract") else None,
                per_slice=per_slice,
                min_ml=min_ml,
                series_id=series_id,
            )
            report = clean_report(store, subject, saved, result)
            lines = clean_lines(store, report)
    except PalmaresError as exc:
        raise click.ClickException(exc.sentence) from None
    echo_report(report, lines, as_json)

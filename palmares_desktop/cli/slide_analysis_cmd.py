"""`palmares slide tissue|cells|measure|tils SUBJECT --store S [--slide REF] [--json]`.

Each command finds the subject's slide (the first one, or --slide by id or display name), calls one
function of core.slides.analysis / core.slides.measure and prints the result (one JSON object with
--json). Everything computed is stored with provenance; refusals are sentences, never tracebacks.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.reader_option import choose_reader, reader_option


def _common(func):
    func = reader_option(func)
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(func)
    func = click.option(
        "--slide",
        "slide_ref",
        default=None,
        help="The slide's id or display name (default: the subject's first).",
    )(func)
    func = click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))(func)
    return click.argument("subject_code", metavar="SUBJECT")(func)


@contextlib.contextmanager
def _slide(
    store_path: Path, subject_code: str, slide_ref: str | None, reader_name, as_json: bool
) -> Iterator:
    """(store, slide, local file, reader choice) for a writing command; errors as one sentence."""
    from palmares_desktop.core.errors import PalmaresError
    from palmares_desktop.core.slides.registry import slide_path
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.store.records import slides_of_subject
    from palmares_desktop.core.store.slide_refs import referenced_slide

    try:
        with Store.open(store_path, create=False) as store:
            subject = store.subject_by_code(subject_code)
            if subject is None:
                raise click.ClickException(f"There is no subject {subject_code} in this store.")
            if slide_ref:
                slide = referenced_slide(store, slide_ref)
                if slide.subject_id != subject.id:
                    raise click.ClickException(f"Slide {slide_ref} is not a slide of subject {subject_code}.")
            else:
                slides = slides_of_subject(store, subject.id)
                if not slides:
                    raise click.ClickException(f"Subject {subject_code} has no slide in this store.")
                slide = slides[0]
            choice = choose_reader(
                store, reader_name, subject_code.split("-")[0], "pathologist", say=not as_json
            )
            yield store, slide, slide_path(store, slide), choice
    except PalmaresError as exc:
        raise click.ClickException(str(exc)) from None


def _emit(as_json: bool, payload: dict, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=float))
    else:
        for line in lines:
            click.echo(line)


def _mm2(value) -> str:
    return f"{value:.4f} mm²" if value is not None else "area unknown (no MPP)"


@click.command("tissue")
@_common
def tissue(subject_code, store_path, slide_ref, as_json, reader_name) -> None:
    """Outline the tissue at low resolution and save it as an editable annotation named 'Tissue'."""
    from palmares_desktop.core.slides import analysis

    with _slide(store_path, subject_code, slide_ref, reader_name, as_json) as (store, slide, path, choice):
        found = analysis.tissue(store, slide, path)
    read = found["read"]
    _emit(
        as_json,
        {"slide": slide.display_name, "reader": choice.to_dict(), **found},
        [
            f"Tissue of {slide.display_name}: {found['polygons']} region(s), {_mm2(found['area_mm2'])}, "
            f"found at level {read['level']} reduced {read['reduction']}x "
            f"({read['mpp_um']:.2f} µm/px)."
            if read["mpp_um"]
            else "",
            f"Saved as annotation {found['annotation_id']} (edit it in the slide room).",
        ],
    )


@click.command("cells")
@_common
@click.option(
    "--annotation", "annotation_ids", multiple=True, help="Detect in this annotation (id; repeatable)."
)
@click.option("--class", "classification", default=None, help="Detect in every annotation of this class.")
def cells(subject_code, store_path, slide_ref, as_json, reader_name, annotation_ids, classification) -> None:
    """Detect nuclei on the hematoxylin channel inside annotations; counts and density per mm²."""
    from palmares_desktop.core.slides import analysis

    with _slide(store_path, subject_code, slide_ref, reader_name, as_json) as (store, slide, path, choice):
        regions = analysis.cells(store, slide, path, list(annotation_ids) or None, classification)
    lines = []
    for r in regions:
        density = f", {r['density_per_mm2']:.0f} per mm²" if r["density_per_mm2"] is not None else ""
        lines.append(
            f"{r['classification'] or 'unclassified'} {r['annotation_id']}: {r['count']} nuclei{density} "
            f"({r['small_round']} small round), stain vectors {r['stains']}."
        )
    _emit(as_json, {"slide": slide.display_name, "reader": choice.to_dict(), "regions": regions}, lines)


@click.command("measure")
@_common
@click.option(
    "--annotation", "annotation_ids", multiple=True, help="Measure this annotation (id; repeatable)."
)
@click.option(
    "--radiomics/--no-radiomics",
    default=True,
    show_default=True,
    help="Also compute pyradiomics 2D features (the 'he' preset, hematoxylin channel at 2 µm per pixel).",
)
def measure(subject_code, store_path, slide_ref, as_json, reader_name, annotation_ids, radiomics) -> None:
    """Area, perimeter, stain/intensity and radiomics features of the slide's annotations, stored with
    provenance. Areas, lengths and radiomics are refused in words when the slide's pixel size (MPP) is
    unknown."""
    from palmares_desktop.core.slides.measure import measure_annotations

    with _slide(store_path, subject_code, slide_ref, reader_name, as_json) as (store, slide, path, choice):
        results = measure_annotations(store, slide, path, list(annotation_ids) or None, radiomics)
    refused = sorted({reason for r in results for reason in r.refused})
    payload = {
        "slide": slide.display_name,
        "reader": choice.to_dict(),
        "annotations": [
            {"annotation_id": r.annotation_id, **r.values, "refused": r.refused} for r in results
        ],
        "stains": results[0].provenance.get("stain", {}).get("stains") if results else None,
    }
    lines = []
    for r in results:
        shape, stain = r.values.get("shape"), r.values.get("stain")
        parts = (
            [
                f"{shape['area_um2']:.0f} µm² ({shape['area_mm2']:.4f} mm²), perimeter {shape['perimeter_um']:.0f} µm"
            ]
            if shape
            else []
        )
        if stain:
            parts.append(
                f"hematoxylin OD {stain['hematoxylin_od_mean']:.4f} ± {stain['hematoxylin_od_sd']:.4f}, "
                f"eosin OD {stain['eosin_od_mean']:.4f} ± {stain['eosin_od_sd']:.4f}"
            )
        if r.values.get("radiomics"):
            parts.append(f"{len(r.values['radiomics'])} radiomics features ('he' preset)")
        lines.append(f"{r.annotation_id}: " + "; ".join(parts))
    lines += [f"Refused: {reason}" for reason in refused]
    _emit(as_json, payload, lines)
    if refused:
        sys.exit(exit_codes.for_outcome(any(r.values for r in results), True))


@click.command("tils")
@_common
@click.option(
    "--percent",
    type=float,
    default=None,
    help="Your stromal TILs score (0-100): stored, with the aid beside it.",
)
def tils(subject_code, store_path, slide_ref, as_json, reader_name, percent) -> None:
    """Stromal TILs helper (TILs Working Group): the stromal fraction covered by lymphocytic infiltrate
    annotations and, as an aid, the density of small round nuclei in stroma. Only --percent is stored."""
    from palmares_desktop.core.slides import analysis

    with _slide(store_path, subject_code, slide_ref, reader_name, as_json) as (store, slide, _path, choice):
        panel = analysis.tils(store, slide, percent)
    aid = panel["aid"]
    lines = [
        f"Stroma inside the invasive border ({aid['border_from']}): {aid['stromal_area_mm2']:.4f} mm² "
        f"(excluded {aid['excluded_area_mm2']:.4f} mm²).",
        f"Lymphocytic infiltrate annotations cover {aid['annotation_percent']:.1f}% of it "
        f"(shown as {aid['annotation_percent_rounded']}%).",
    ]
    if aid["small_round_nuclei"] is not None:
        lines.append(
            f"Aid: {aid['small_round_nuclei']} small round nuclei in stroma, "
            f"{aid['small_round_density_per_mm2']:.0f} per mm², covering {aid['small_round_area_percent']:.1f}%."
        )
    else:
        lines.append("Aid: no cell detection in this slide yet (palmares slide cells).")
    if percent is not None:
        lines.append(f"Stored your stromal TILs score: {percent:g}%.")
    else:
        lines.append("Nothing stored: give your score with --percent.")
    _emit(as_json, {"slide": slide.display_name, "reader": choice.to_dict(), **panel}, lines)

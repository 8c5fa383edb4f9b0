"""`palmares slide info SLIDE [--json]`, `palmares slide add SLIDE --subject CODE --store S [--stain HE]`,
`palmares slide locate --store S --slide ID --path NEW` and `palmares slide annotations SUBJECT ...`;
the analyses (`tissue`, `cells`, `measure`, `tils`) live in slide_analysis_cmd.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.lazy import LazyGroup
from palmares_desktop.cli.reader_option import choose_reader, reader_option

_ANALYSES = {
    name: f"palmares_desktop.cli.slide_analysis_cmd:{name}" for name in ("tissue", "cells", "measure", "tils")
}


@click.group("slide", cls=LazyGroup, lazy_subcommands=_ANALYSES)
def slide() -> None:
    """Whole-slide images: describe a slide file, register it for a subject, re-link a moved file,
    annotations in and out, tissue outline, cell detection, measurements and the stromal TILs helper."""


@slide.command("info")
@click.argument("slide_path", metavar="SLIDE", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(slide_path: Path, as_json: bool) -> None:
    """Levels, sizes, downsamples, MPP, vendor and associated images of SLIDE."""
    from palmares_desktop.core.slides.reader import SlideError, open_slide

    try:
        described = open_slide(slide_path).to_dict()
    except SlideError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    mpp = f"{described['mpp_x']:.4g} x {described['mpp_y']:.4g} µm/px" if described["mpp_x"] else "unknown"
    click.echo(
        f"{slide_path.name}: {described['vendor']} {described['format']} (read by {described['backend']})"
    )
    click.echo(f"  MPP: {mpp} {described['magnification']}".rstrip())
    for n, ((h, w), ds) in enumerate(zip(described["levels"], described["downsamples"], strict=True)):
        click.echo(f"  level {n}: {w} x {h} px, downsample {ds:.4g}")
    click.echo(f"  associated images: {', '.join(described['associated']) or 'none'}")


@slide.command("add")
@click.argument("slide_path", metavar="SLIDE", type=click.Path(path_type=Path))
@click.option("--subject", "subject_code", required=True, help="Subject code, e.g. IT03-0001.")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--stain", default="HE", show_default=True)
@reader_option
def add(slide_path: Path, subject_code: str, store_path: Path, stain: str, reader_name: str | None) -> None:
    """Register SLIDE for subject CODE (its local path stays site-only; nothing identifying is copied)."""
    from palmares_desktop.core.slides.reader import SlideError
    from palmares_desktop.core.slides.registry import add_slide
    from palmares_desktop.core.store import Store, StoreError

    try:
        with Store.open(store_path, create=False) as store:
            choose_reader(store, reader_name, subject_code.split("-")[0], "pathologist")
            added = add_slide(store, subject_code, slide_path, stain=stain)
    except (SlideError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Slide {added.display_name} registered ({added.width} x {added.height} px, id {added.id}).")


@slide.command("locate")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "--slide", "reference", required=True, help="The slide's id or display name, e.g. 'IT03-0001 HE'."
)
@click.option(
    "--path", "new_path", required=True, type=click.Path(path_type=Path), help="Where the file is now."
)
def locate(store_path: Path, reference: str, new_path: Path) -> None:
    """Re-link a registered slide whose file moved (its content fingerprint is checked first)."""
    from palmares_desktop.core.slides.registry import locate_slide
    from palmares_desktop.core.store import Store, StoreError
    from palmares_desktop.core.store.slide_refs import referenced_slide

    try:
        with Store.open(store_path, create=False) as store:
            found = referenced_slide(store, reference)
            # The CLI's system reader is recorded as working at the slide's own site.
            store.use_system_reader(site_code=found.site_code)
            located = locate_slide(store, found.id, new_path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Slide {located.display_name} is linked to its file again (fingerprint checked).")


@slide.command("annotations")
@click.argument("subject_code", metavar="SUBJECT")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--geojson", "out", type=click.Path(path_type=Path), help="Export to this GeoJSON file.")
@click.option("--import", "source", type=click.Path(path_type=Path), help="Import this QuPath GeoJSON file.")
@click.option(
    "--detections/--no-detections", default=True, show_default=True, help="Export detections (cells) too."
)
@reader_option
def annotations(
    subject_code: str,
    store_path: Path,
    out: Path | None,
    source: Path | None,
    detections: bool,
    reader_name: str | None,
) -> None:
    """Export (--geojson OUT) or import (--import FILE) the annotations and detections of SUBJECT's slide,
    as a QuPath GeoJSON FeatureCollection (level-0 pixels)."""
    from palmares_desktop.core.slides.annotations import export_slide, import_geojson, save_objects
    from palmares_desktop.core.store import Store, StoreError

    if (out is None) == (source is None):
        raise click.ClickException("Give exactly one of --geojson OUT or --import FILE.")
    try:
        with Store.open(store_path, create=False) as store:
            if source is not None:  # only an import writes: an export records no author
                choose_reader(store, reader_name, subject_code.split("-")[0], "pathologist")
            subject = store.subject_by_code(subject_code)
            from palmares_desktop.core.store.records import slides_of_subject

            slides = slides_of_subject(store, subject.id) if subject else []
            if not slides:
                raise click.ClickException(f"Subject {subject_code} has no slide in this store.")
            target = slides[0]
            if out is not None:
                collection = export_slide(store, target, detections=detections)
                out.write_text(json.dumps(collection), encoding="utf-8")
                kinds = [f["properties"]["objectType"] for f in collection["features"]]
                click.echo(
                    f"Exported {kinds.count('annotation')} annotations and {kinds.count('detection')} detections "
                    f"of {target.display_name} to {out}."
                )
                return
            try:
                data = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise click.ClickException(f"{source} is not a readable GeoJSON file ({exc}).") from None
            objects, refused = import_geojson(data, target.width, target.height)
            save_objects(store, target, objects)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    for reason in refused:
        click.echo(f"Refused: {reason}", err=True)
    click.echo(f"Imported {len(objects)} objects into {target.display_name}; refused {len(refused)}.")
    code = exit_codes.for_outcome(bool(objects), bool(refused))
    if code != exit_codes.OK:
        sys.exit(code)

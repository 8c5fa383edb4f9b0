"""`palmares demo --out DIR [--subjects N] [--store STORE]`: write the demo study (and optionally a demo store)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from palmares_desktop.cli.reader_option import reader_option
from palmares_desktop.core.demo.demo_store import DEMO_READER, DemoError, build_demo_store, write_demo_study
from palmares_desktop.core.profile import ProfileError
from palmares_desktop.core.slides.reader import SlideError
from palmares_desktop.core.store import StoreError


@click.command("demo")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the demo study into (created if needed; existing demo files are replaced).",
)
@click.option(
    "--subjects", default=3, show_default=True, type=click.IntRange(1, 99), help="Number of subjects."
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also import the written demo into this store (created if needed; done only once per store).",
)
@reader_option
def demo(out: Path, subjects: int, store_path: Path | None, reader_name: str | None) -> None:
    """Write a realistic demo study to OUT: per subject a CT and an FDG-PET DICOM series (one study,
    one frame of reference; Siemens, GE and Philips conventions in turn), planted lesions of known
    size and uptake as label maps (labels/subject<n>/*.nrrd), and a pyramidal H&E-like slide
    (slides/*.svs); demo_manifest.json lists every expected value. The DICOM headers carry fake
    names (DEMO^SUBJECTn), as a PACS export would: `palmares import` de-identifies them."""
    start = time.perf_counter()
    with tqdm(total=2 * subjects, file=sys.stderr, disable=None, leave=False, desc="demo") as bar:

        def progress(step) -> None:
            bar.n = step.done
            bar.set_postfix_str(step.message)

        try:
            manifest = write_demo_study(out, subjects, on_progress=progress)
        except DemoError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Demo study with {len(manifest.subjects)} subjects written to {manifest.root} "
        f"in {manifest.seconds:.1f} s:"
    )
    for s in manifest.subjects:
        lesions = ", ".join(
            f"{lesion['name']} (label {lesion['label']}, SUVmax {lesion['planted_suv_max']:g})"
            for lesion in s.lesions
        )
        click.echo(
            f"  {s.code}  {s.vendor:<7} PET {s.pet_units}  {s.dicom_folder}/  {s.slide} "
            f"({s.slide_info['width']}x{s.slide_info['height']}, {len(s.slide_info['levels'])} levels, "
            f"{s.seconds['slide']:.1f} s)"
        )
        click.echo(f"      lesions: {lesions}")
        click.echo(f"      label maps: {s.ct_labels}, {s.pet_labels}")
    click.echo(f"  manifest: {manifest.root / 'demo_manifest.json'}")
    if store_path is not None:
        try:
            root = build_demo_store(
                store_path, work_dir=manifest.root, n_subjects=subjects, reader_name=reader_name
            )
        except (DemoError, StoreError, SlideError, ProfileError) as exc:
            raise click.ClickException(str(exc)) from exc
        author = (
            f"{reader_name} (given with --reader)"
            if reader_name
            else f"the system reader '{DEMO_READER}' (give --reader NAME to record a person)"
        )
        click.echo(f"Demo store ready at {root}; its imports and lesions are recorded as {author}.")
    click.echo(f"Done in {time.perf_counter() - start:.1f} s.")

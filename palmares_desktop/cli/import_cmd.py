"""`palmares import DIR --subject CODE`: one patient's CT and PET, de-identified, into the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from palmares_desktop.core.paths import default_store_path

_MAX_FILES_LISTED = 20


@click.command("import")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--subject", required=True, help="Subject code (pseudonym), e.g. IT03-0017.")
@click.option(
    "--site", "site_code", default=None, help="Site code, e.g. IT03 (default: the subject code's prefix)."
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Store folder (default: the user's store; created if new).",
)
@click.option(
    "--patient-id",
    default=None,
    help="Original PatientID of the patient to import, when the folder holds several patients.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_(
    folder: Path,
    subject: str,
    site_code: str | None,
    store_path: Path | None,
    patient_id: str | None,
    as_json: bool,
) -> None:
    """Import the usable CT and PET series of ONE patient in FOLDER as subject CODE.

    Images are de-identified (DICOM PS3.15 basic profile, patient characteristics and shifted
    dates kept), SUV is computed from the original headers first, and the link between the
    original PatientID and CODE is kept only in the store's keys.db. Importing the same files
    again changes nothing. Exit status 0 when something was imported or everything was already
    in the store, 1 otherwise.
    """
    from palmares_desktop.core.importer import ImportRefusedError, iter_import_dicom
    from palmares_desktop.core.store import Store, StoreError

    if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
        raise click.ClickException(f"There are no DICOM files in {folder}: it holds no files at all.")
    try:
        with Store.open(store_path or default_store_path()) as store:
            _choose_reader(store, site_code or subject.split("-")[0])
            summary = _drain(iter_import_dicom(store, folder, subject, site_code, patient_id))
    except (ImportRefusedError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(summary)
    if not summary.ok:
        sys.exit(1)


def _choose_reader(store, site_code: str) -> None:
    from palmares_desktop.core.profile import use_profile_or_system_reader
    from palmares_desktop.core.store import StoreError, check_site_code

    try:
        check_site_code(site_code)
    except StoreError:
        return  # no reader is recorded for a bad code: the import refuses it first, in words
    use_profile_or_system_reader(store, site_code)


def _drain(task):
    from tqdm import tqdm

    bar = None
    phase = None
    try:
        while True:
            try:
                step = next(task)
            except StopIteration as stop:
                return stop.value
            if step.message != phase:  # a new phase (reading headers, de-identifying...) gets a new bar
                if bar is not None:
                    bar.close()
                phase = step.message
                bar = tqdm(
                    total=step.total, desc=phase, unit="file", file=sys.stderr, leave=False, disable=None
                )
            bar.total = step.total
            bar.n = step.done
            bar.refresh()
    finally:
        if bar is not None:
            bar.close()


def _print_summary(summary) -> None:
    if summary.imported:
        click.echo(f"Imported {len(summary.imported)} series as {summary.subject_code}:")
        for s in summary.imported:
            click.echo(
                f"  {s.modality:<3} {s.n_instances:>5} images  {s.units:<6} {s.description}  (id {s.series_id})"
            )
            for warning in s.warnings:
                click.echo(f"      WARNING: {warning}")
    else:
        click.echo(f"Nothing new imported for {summary.subject_code}.")
    if summary.skipped:
        click.echo(f"Skipped {len(summary.skipped)} series:")
        for note in summary.skipped:
            click.echo(f"  {note.label}: {note.reason}")
    if summary.errors:
        click.echo(f"Could not import {len(summary.errors)} series:")
        for note in summary.errors:
            click.echo(f"  {note.label}: {note.reason}")
    if summary.files_skipped:
        click.echo(f"{len(summary.files_skipped)} file(s) are not images of a volume:")
        for path, reason in summary.files_skipped[:_MAX_FILES_LISTED]:
            click.echo(f"  {path}: {reason}")
        if len(summary.files_skipped) > _MAX_FILES_LISTED:
            click.echo(
                f"  ... and {len(summary.files_skipped) - _MAX_FILES_LISTED} more (`palmares scan` lists them all)."
            )

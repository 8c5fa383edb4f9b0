"""`palmares import DIR --subject CODE`: one patient's CT and PET, de-identified, into the store."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from palmares_desktop.cli import exit_codes
from palmares_desktop.cli.reader_option import choose_reader, reader_option
from palmares_desktop.core.errors import PalmaresError
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
@reader_option
def import_(
    folder: Path,
    subject: str,
    site_code: str | None,
    store_path: Path | None,
    patient_id: str | None,
    as_json: bool,
    reader_name: str | None,
) -> None:
    """Import the usable CT and PET series of ONE patient in FOLDER as subject CODE.

    Images are de-identified (DICOM PS3.15 basic profile, patient characteristics and shifted
    dates kept), SUV is computed from the original headers first, and the link between the
    original PatientID and CODE is kept only in the store's keys.db. Importing the same files
    again changes nothing. Exit status 0 when every CT/PET series went in (or was already in the
    store), 3 when some went in and others failed or were unusable, 1 when nothing could be
    imported. A refused
    import leaves no store behind where there was none.
    """
    from palmares_desktop.core.importer import ImportRefusedError, iter_plan_import
    from palmares_desktop.core.store import StoreError

    if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
        raise click.ClickException(f"There are no DICOM files in {folder}: it holds no files at all.")
    root = (store_path or default_store_path()).expanduser()
    try:
        # Scanned before the store is opened: a refused or empty import must not create a store.
        plan = _drain(iter_plan_import(folder, subject, site_code, patient_id))
        reader = None
        if plan.candidates:
            summary, reader = _import_into(root, plan, reader_name, say=not as_json)
        else:
            summary = plan.summary
    except (ImportRefusedError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        data = summary.to_dict()
        data["reader"] = reader.to_dict() if reader else None
        click.echo(json.dumps(data, indent=2))
    else:
        _print_summary(summary)
    code = exit_codes.for_outcome(bool(summary.imported), not summary.complete)
    if code != exit_codes.OK:
        sys.exit(code)


def _import_into(root: Path, plan, reader_name: str | None, say: bool):
    """Open (or create) the store and carry out the plan. When the import is refused before anything
    of the patient is written (e.g. an unreadable key table) into a store this command created, what
    opening created is removed again: a refused import leaves no store behind."""
    from palmares_desktop.core.importer import iter_import_plan
    from palmares_desktop.core.store import Store, records

    before = set(root.iterdir()) if root.is_dir() else None
    created = not root.exists() or (before is not None and root / Store.DB_NAME not in before)
    top = root.absolute()  # the outermost folder opening the store will create (parents included)
    while not top.parent.exists():
        top = top.parent
    try:
        with Store.open(root) as store:
            try:
                reader = choose_reader(store, reader_name, plan.site, say=say)
                return _drain(iter_import_plan(store, plan)), reader
            except PalmaresError:
                # Another import may have started in the same new store meanwhile: keep it then.
                created = created and not records.has_subjects(store)
                raise
    except PalmaresError:
        if created:
            _remove_new_entries(top if before is None else root, before)
        raise


def _remove_new_entries(root: Path, before: set[Path] | None) -> None:
    """All of `root` when it is new (`before` None), else only the entries not in `before`."""
    if before is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    for path in set(root.iterdir()) - before:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()


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

"""`palmares export | verify | merge | table`: site packages to the coordinating centre, and the analysis table."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from palmares_desktop.cli.reader_option import choose_reader, reader_option


@click.command("export")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path))
@click.option(
    "--since",
    "since",
    default=None,
    type=click.Path(path_type=Path),
    help="Only what changed after this earlier package of this site.",
)
@reader_option
def export(store_path: Path, out: Path, since: Path | None, reader_name: str | None) -> None:
    """Write this site's package for the centre: signed by the site, encrypted to the centre."""
    from palmares_desktop.core.exchange.package import export_package
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False) as store:
        choose_reader(store, reader_name, store.site_code())
        done = export_package(store, out, since)
    counts = done.manifest["row_counts"]
    listed = ", ".join(f"{n} {t}" for t, n in counts.items() if n)
    click.echo(f"Package {done.package_id} of site {done.manifest['site_code']} written to {out} ({listed}).")


@click.command("verify")
@click.argument("package_file", type=click.Path(path_type=Path))
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
def verify(package_file: Path, store_path: Path) -> None:
    """Integrity (signature, hashes, schema, references) and privacy of a package; exit 1 on any failure."""
    from palmares_desktop.core.exchange.verify import verify as check
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False, read_only=True) as store:
        report = check(store, package_file)
    for line in report.sentences():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@click.command("merge")
@click.argument("package_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--into", "central", required=True, type=click.Path(path_type=Path))
@reader_option
def merge(package_files: tuple[Path, ...], central: Path, reader_name: str | None) -> None:
    """Merge site packages into the centre's store, one transaction each; exit 1 when one is refused."""
    from palmares_desktop.cli.exit_codes import for_outcome
    from palmares_desktop.core.exchange.merge import merge_files
    from palmares_desktop.core.store import Store, exchange_rows

    with Store.open(central, create=False) as store:
        choose_reader(store, reader_name, None, say=False)
        result = merge_files(store, list(package_files))
        open_conflicts = exchange_rows.conflicts(store, "open")
    for o in result.outcomes:
        if o.status == "merged":
            click.echo(f"{o.path.name}: merged (site {o.site}, {o.rows} rows, {o.conflicts} conflicts).")
        elif o.status == "already merged":
            click.echo(f"{o.path.name}: already merged, nothing changed.")
        else:
            click.echo(f"{o.path.name}: refused, nothing written: {o.reason}")
    for c in open_conflicts:
        click.echo(
            f"Open conflict: {c['table_name']} row {c['row_id']} (site {c['site_code']}) has two versions."
        )
    refused = len(result.refused)
    code = for_outcome(refused < len(result.outcomes), refused > 0)
    if code:
        sys.exit(code)


@click.command("table")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path))
@click.option("--modality", type=click.Choice(["ct", "pet", "he"]), default=None)
@click.option("--long", "long_format", is_flag=True, help="One row per value, with its provenance.")
def table(store_path: Path, out: Path, modality: str | None, long_format: bool) -> None:
    """The analysis table of the centre's store, as Parquet or CSV (by OUT's extension)."""
    from palmares_desktop.core.exchange.table import write_table
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False, read_only=True) as store:
        rows, columns = write_table(store, out, modality, long_format)
    click.echo(f"{rows} rows x {columns} columns written to {out}.")

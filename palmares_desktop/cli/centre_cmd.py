"""`palmares centre packages | completeness | conflicts | resolve`: the coordinating centre's view of its
central store (core/exchange/coordination.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from palmares_desktop.cli.reader_option import choose_reader, reader_option

STORE = click.option(
    "--store", "store_path", required=True, type=click.Path(path_type=Path), help="The central store."
)
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _read(store_path: Path, query):
    """`query(store)` on the central store opened read-only (showing never writes)."""
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False, read_only=True) as store:
        return query(store)


@click.group("centre")
def centre() -> None:
    """What the coordinating centre has received, what is complete, and the conflicts to resolve."""


@centre.command("packages")
@STORE
@JSON
def packages(store_path: Path, as_json: bool) -> None:
    """Packages received per site, with their export dates."""
    from palmares_desktop.core.exchange.coordination import packages_by_site

    found = _read(store_path, packages_by_site)
    if as_json:
        click.echo(json.dumps([{"site": s.site, "packages": list(s.packages)} for s in found], indent=2))
        return
    if not found:
        click.echo("No package merged yet.")
    for s in found:
        click.echo(f"{s.site}: {len(s.packages)} package(s), last exported {s.last_exported}")
        for p in s.packages:
            click.echo(
                f"  {p['id'][:8]}  exported {p['exported_at']}  received {p['received_at']}  {p['rows']} rows"
            )


@centre.command("completeness")
@STORE
@JSON
def completeness(store_path: Path, as_json: bool) -> None:
    """Per site and subject: CT / PET segmented, H&E annotated, features computed, reading done."""
    from palmares_desktop.core.exchange.coordination import completeness as table

    rows = _read(store_path, table)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'Site':<5} {'Subject':<10} CT  PET H&E Feat Done")
    for r in rows:
        marks = "  ".join("yes" if r[k] else " - " for k in ("ct", "pet", "he", "features", "done"))
        click.echo(f"{r['site']:<5} {r['subject']:<10} {marks}")


@centre.command("conflicts")
@STORE
@click.option("--all", "show_all", is_flag=True, help="Resolved conflicts too.")
@JSON
def conflicts(store_path: Path, show_all: bool, as_json: bool) -> None:
    """Rows two sites (or two branches of a site's chain) changed differently: both versions are kept."""
    from palmares_desktop.core.exchange.coordination import conflicts as listed

    found = _read(store_path, lambda store: listed(store, None if show_all else "open"))
    if as_json:
        click.echo(
            json.dumps([c.__dict__ | {"differences": c.differences()} for c in found], indent=2, default=str)
        )
        return
    if not found:
        click.echo("No open conflict.")
    for c in found:
        click.echo(f"{c.id[:8]}  {c.label} (site {c.site}), {c.status}")
        for column in c.differences():
            click.echo(f"    {column}: a = {c.version_a.get(column)!r}   b = {c.version_b.get(column)!r}")


@centre.command("resolve")
@click.argument("conflict_id")
@click.option("--keep", required=True, type=click.Choice(["a", "b"]), help="The version to keep.")
@STORE
@reader_option
def resolve(conflict_id: str, keep: str, store_path: Path, reader_name: str | None) -> None:
    """Keep version a or b of a conflict (recorded in the audit log with who chose)."""
    from palmares_desktop.core.exchange.coordination import resolve_conflict
    from palmares_desktop.core.store import Store

    with Store.open(store_path, create=False) as store:
        choose_reader(store, reader_name, store.site_code())
        done = resolve_conflict(store, conflict_id, keep)
    click.echo(f"Conflict {done.id[:8]} resolved: version {keep} of {done.table} {done.row_id} kept.")

"""`palmares store check --store S [--repair] [--hashes] [--json]`: is the store whole?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group("store")
def store() -> None:
    """The local store: check that its database, audit log and files agree."""


@store.command("check")
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path))
@click.option("--repair", is_flag=True, help="Remove files left without rows by interrupted work.")
@click.option("--hashes", is_flag=True, help="Also re-read every file and compare it with its stored hash.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(store_path: Path, repair: bool, hashes: bool, as_json: bool) -> None:
    """Integrity of the database, the audit log's hash chain, orphan and missing files.

    Exits 0 when the store is consistent, 1 when a problem was found."""
    from palmares_desktop.core.store.check import check_store

    report = check_store(store_path, repair=repair, hashes=hashes)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.sentences():
            click.echo(line)
    if not report.ok:
        sys.exit(1)

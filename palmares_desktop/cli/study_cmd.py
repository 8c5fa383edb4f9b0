"""`palmares study round create|status|close|report` and `palmares study assignments`: reader studies."""

from __future__ import annotations

import json
from pathlib import Path

import click

from palmares_desktop.cli.options import modality_option
from palmares_desktop.cli.reader_option import choose_reader, reader_option

STORE = click.option(
    "--store", "store_path", required=True, type=click.Path(path_type=Path), help="Store folder."
)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@click.group("study")
def study() -> None:
    """Reader studies: blinded reading rounds and their agreement."""


@study.group("round")
def round_() -> None:
    """Create, follow, close and report reading rounds (coordinator)."""


@round_.command("create")
@STORE
@click.option("--name", required=True, help="Round name, e.g. 'PET inter-reader 1'.")
@modality_option(help="What is read in this round: ct, pet or he (H&E slides).")
@click.option("--subjects", required=True, help="Subject codes, comma separated.")
@click.option("--readers", "reader_names", required=True, help="Reader names, comma separated.")
@click.option("--repeats", default=1, show_default=True, help="Readings per reader (2+: intra-reader).")
@click.option("--min-delay-days", default=0, show_default=True, help="Days between a reader's repeats.")
@click.option("--blinded/--open", default=True, show_default=True, help="Readers blind to each other.")
@reader_option
def create(store_path, name, modality, subjects, reader_names, repeats, min_delay_days, blinded, reader_name):
    """Define a round: which subjects, which modality, which readers, how many repeats."""
    from palmares_desktop.core.store import Store, records
    from palmares_desktop.core.study.rounds import create_round

    with Store.open(store_path, create=False) as store:
        choose_reader(store, reader_name, records.store_site(store))
        made = create_round(
            store, name, modality, _split(subjects), _split(reader_names), repeats, min_delay_days, blinded
        )
    n = len(_split(subjects)) * len(set(_split(reader_names))) * repeats
    click.echo(f"Round {made['name']!r} created: {n} readings assigned ({'blinded' if blinded else 'open'}).")


@round_.command("status")
@STORE
@click.option("--name", required=True)
@click.option("--json", "as_json", is_flag=True)
def status(store_path, name, as_json):
    """Who has read what in a round."""
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.study.rounds import assignments_of

    with Store.open(store_path, create=False, read_only=True) as store:
        found = assignments_of(store, round_name=name)
        names = {r.id: r.name for r in store.readers()}
    table = [
        {"reader": names.get(a.reader_id, a.reader_id), "subject": a.subject_code, "reading": a.repeat,
         "case": a.case_label, "status": a.status, "available": a.available}
        for a in found
    ]  # fmt: skip
    if as_json:
        click.echo(json.dumps({"round": name, "assignments": table}, indent=2))
        return
    done = sum(a.status == "done" for a in found)
    click.echo(f"Round {name!r}: {done} of {len(found)} readings done.")
    for row in table:
        click.echo(f"  {row['reader']:<24} {row['subject']:<10} reading {row['reading']}  {row['status']}")


@round_.command("close")
@STORE
@click.option("--name", required=True)
@reader_option
def close(store_path, name, reader_name):
    """End a round: blinding is lifted."""
    from palmares_desktop.core.store import Store, records
    from palmares_desktop.core.study.rounds import close_round

    with Store.open(store_path, create=False) as store:
        choose_reader(store, reader_name, records.store_site(store))
        close_round(store, name)
    click.echo(f"Round {name!r} closed.")


@round_.command("report")
@STORE
@click.option("--name", required=True)
@click.option(
    "--out", type=click.Path(path_type=Path), help="FILE.csv or FILE.parquet (features; masks beside)."
)
@click.option("--threshold", default=0.75, show_default=True, type=click.FloatRange(0, 1), help="Robust ICC.")
@click.option("--json", "as_json", is_flag=True)
def report(store_path, name, out, threshold, as_json):
    """Dice, Jaccard, HD95 and volume difference per lesion and pair; ICC per feature."""
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.study.report import round_report, write_report

    with Store.open(store_path, create=False, read_only=True) as store:
        result = round_report(store, name, threshold)
    written = write_report(result, out) if out else []
    if as_json:
        click.echo(
            json.dumps(result.to_dict() | {"written": [str(p) for p in written]}, indent=2, default=str)
        )
        return
    click.echo(f"Round {name!r} ({result.modality}), readers: {', '.join(sorted(result.readers.values()))}")
    for p in result.pairs:
        if result.modality == "HE":
            area = p["area_difference_mm2"]
            size = f"area difference {area:+.3f} mm²" if area is not None else "area in pixels only (no MPP)"
        else:
            hd95 = f"{p['hd95_mm']:.1f} mm" if p["hd95_mm"] is not None else "n/a"
            size = f"HD95 {hd95}, volume difference {p['volume_difference_ml']:+.2f} mL"
        click.echo(
            f"  {p['lesion']:<20} {p['scope']:<13} {p['reader_a']} / {p['reader_b']}: Dice {p['dice']:.3f}, {size}"
        )
    for scope, robust in result.robust.items():
        total = sum(1 for f in result.features if f"{f['scope']} {f['kind']}" == scope)
        click.echo(f"  {scope}: {len(robust)} of {total} features robust (ICC >= {threshold:g})")
    for note in result.notes:
        click.echo(f"  Note: {note}")
    for path in written:
        click.echo(f"Wrote {path}")


@study.command("assignments")
@STORE
@reader_option
@click.option("--json", "as_json", is_flag=True)
def assignments(store_path, reader_name, as_json):
    """A reader's readings to do (blinded ones by case label, never by subject code)."""
    from palmares_desktop.core.store import Store, records
    from palmares_desktop.core.study.rounds import assignments_of

    with Store.open(store_path, create=False) as store:
        reader = choose_reader(store, reader_name, records.store_site(store), role="radiologist").reader
        found = assignments_of(store, reader_id=reader.id)
    table = [
        {"round": a.round_name, "case": a.label, "status": a.status, "available": a.available, "id": a.id}
        for a in found
    ]
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    for row in table:
        state = (
            row["status"]
            if row["available"] or row["status"] == "done"
            else "not yet (previous reading first)"
        )
        click.echo(f"  {row['round']:<24} {row['case']:<24} {state}")

"""`palmares pet threshold | metrics | candidates`: the PET tools of the CT/PET room, headless.

Points are patient coordinates in mm (DICOM LPS), written X,Y,Z (e.g. --at -34,-42,-210).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from palmares_desktop.cli.options import (
    echo_report,
    new_lesion_options,
    plain_errors,
    point,
    region_choice,
    region_options,
    store_option,
)
from palmares_desktop.core.paths import default_store_path
from palmares_desktop.core.store import records

RULE_CHOICES = ["41%", "50%", "suv2.5", "suv4.0", "percist"]


def _reference_options(f):
    f = click.option(
        "--blood-pool-at",
        callback=point,
        default=None,
        help="PERCIST fallback when the liver cannot serve: centre of the 1 x 2 cm descending-aorta cylinder.",
    )(f)
    return click.option(
        "--liver-at",
        callback=point,
        default=None,
        help="PERCIST: centre of the 3 cm liver reference sphere (right lobe), X,Y,Z mm.",
    )(f)


def _open(store_path: Path | None, subject: str):
    from palmares_desktop.core.profile import use_profile_or_system_reader
    from palmares_desktop.core.store import Store

    store = Store.open(store_path or default_store_path(), create=False)
    use_profile_or_system_reader(store, subject.split("-")[0] if "-" in subject else None)
    return store


@click.group("pet")
def pet() -> None:
    """PET segmentation and metrics (SUV thresholds, PERCIST, whole-body candidates)."""


@pet.command("threshold")
@store_option
@click.option("--subject", required=True, help="Subject code, e.g. IT99-0001.")
@click.option("--at", "at", required=True, callback=point, help="Centre of the region, X,Y,Z mm (LPS).")
@click.option("--rule", required=True, type=click.Choice(RULE_CHOICES), help="Threshold rule.")
@_reference_options
@region_options
@click.option(
    "--seed-at",
    callback=point,
    default=None,
    help="Keep the component of this voxel instead of the region's hottest voxel.",
)
@new_lesion_options("PET lesion N")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@plain_errors
def threshold(
    store_path,
    subject,
    at,
    rule,
    liver_at,
    blood_pool_at,
    box_mm,
    sphere_mm,
    seed_at,
    lesion,
    lesion_site,
    as_json,
):
    """Threshold the PET in a region around --at and save the result as a lesion's PET segmentation."""
    from palmares_desktop.core.pet.subject_pet import threshold_lesion, threshold_lines, threshold_report

    shape, size = region_choice(box_mm, sphere_mm)
    with _open(store_path, subject) as store:
        saved, result = threshold_lesion(
            store, subject, at, rule, liver_at, blood_pool_at, size, shape, seed_at, lesion, lesion_site
        )
        report = threshold_report(store, subject, saved, result)
    echo_report(report, threshold_lines(report), as_json)


@pet.command("metrics")
@store_option
@click.option("--subject", required=True, help="Subject code.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@plain_errors
def metrics(store_path, subject, as_json):
    """PET metrics of every lesion of the subject, and the subject's totals."""
    from palmares_desktop.core.pet.subject_pet import subject_pet_metrics

    with _open(store_path, subject) as store:
        result = subject_pet_metrics(store, subject)
    totals = result.pop("totals")
    out = {**result, **totals}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{subject}: {len(result['lesions'])} lesions with a PET mask")
    click.echo(
        f"  {'lesion':<24} {'site':<12} {'SUVmax':>7} {'SUVmean':>7} {'SUVpeak':>7} {'MTV mL':>7} {'TLG':>8}  mask"
    )
    for x in result["lesions"]:
        source = f"{x['mask']['drawn_on']} v{x['mask']['version']}" + (
            " resampled" if "resampling" in x["mask"] else ""
        )
        click.echo(
            f"  {x['name'][:24]:<24} {(x['organ'] or '-')[:12]:<12} {x['suv_max']:>7.2f} {x['suv_mean']:>7.2f} "
            f"{x['suv_peak']:>7.2f} {x['mtv_ml']:>7.2f} {x['tlg']:>8.2f}  {source}"
        )
    for x in result["skipped"]:
        click.echo(f"  {x['name']}: no PET metrics, {x['reason']}.")
    organs = ", ".join(f"{k} {v}" for k, v in sorted(totals["lesions_per_organ"].items()))
    click.echo(
        f"  total MTV {totals['total_mtv_ml']:.2f} mL, total TLG {totals['total_tlg']:.2f}, "
        f"{totals['lesion_count']} lesions ({organs}), Dmax {totals['dmax_mm']:.1f} mm"
    )


@pet.command("candidates")
@store_option
@click.option("--subject", required=True, help="Subject code.")
@click.option(
    "--rule",
    default="percist",
    show_default=True,
    type=click.Choice(["percist", "suv2.5", "suv4.0"]),
    help="Threshold every region must pass.",
)
@_reference_options
@click.option("--min-voxels", default=1, show_default=True, type=int, help="Smallest region listed.")
@click.option(
    "--accept",
    "accept",
    multiple=True,
    type=int,
    help="Save the candidate of this rank as a lesion (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@plain_errors
def candidates(store_path, subject, rule, liver_at, blood_pool_at, min_voxels, accept, as_json):
    """Every connected region above the rule in the whole PET, hottest first.

    PERCIST uses --liver-at or --blood-pool-at, else the reference of the subject's last PERCIST threshold.
    """
    from palmares_desktop.core.pet.candidates import asdict_candidates
    from palmares_desktop.core.pet.subject_pet import accept_candidate, subject_candidates

    with _open(store_path, subject) as store:
        result, _ = subject_candidates(store, subject, rule, liver_at, blood_pool_at, min_voxels)
        accepted = [accept_candidate(store, subject, result, rank) for rank in accept]
        names = [records.lesion_row(store, seg.lesion_id).name for seg in accepted]
    out = {"subject": subject, "rule": rule, **asdict_candidates(result)}
    out["accepted"] = [
        {"rank": r, "lesion": n, "segmentation_id": a.id}
        for r, n, a in zip(accept, names, accepted, strict=True)
    ]
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(
        f"{subject}: {len(result.candidates)} regions at or above SUV {result.threshold_suv:.2f} ({rule})"
    )
    reference = result.parameters.get("reference")
    if reference:
        centre = ", ".join(f"{v:.1f}" for v in reference["centre_mm"])
        click.echo(
            f"  reference {reference['kind']} at {centre} mm ({reference['source']}): "
            f"SUV mean {reference['suv_mean']:.2f}, SD {reference['suv_sd']:.2f}"
        )
    click.echo(f"  {'#':>3} {'SUVmax':>7} {'MTV mL':>7} {'hottest voxel (mm)':>26}  note")
    for c in result.candidates:
        note = f"likely physiological ({c.likely_physiological})" if c.likely_physiological else ""
        where = ", ".join(f"{v:.1f}" for v in c.hottest_mm)
        click.echo(f"  {c.rank:>3} {c.suv_max:>7.2f} {c.mtv_ml:>7.2f} {where:>26}  {note}")
    for rank, name in zip(accept, names, strict=True):
        click.echo(f"  candidate {rank} saved as lesion {name!r}.")

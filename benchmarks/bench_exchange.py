"""Benchmark: site export, centre merge and the analysis table (issue 8).

The issue's scale is 24 site packages holding 3,500 subjects x 5 lesions x 2 modalities with ~1,200
features each (small masks): export of one site < 10 s, merging all 24 into an empty centre < 60 s,
the full wide table as Parquet < 30 s, merge memory < 2 GB. This script runs at a REDUCED, stated
scale (default 24 sites x 6 subjects = 144 subjects, 1/24 of the issue's) and extrapolates linearly
in the number of rows (every step is one pass over the rows), printing both.

  ours      palmares export (per site), palmares merge of 6/12/24 packages into an empty centre (one
            process, its peak memory), palmares table --out table.parquet
  baseline  what copying the data without the exchange would cost in the same run: the SQLite backup
            API copying a site's palmares.db (export), ATTACH + INSERT ... SELECT of its feature sets
            into one database (merge), json.loads of every feature set (table)

    python benchmarks/bench_exchange.py [--sites 24] [--subjects-per-site 6] [--features 1200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CLI = "from palmares_desktop.cli.main import cli; cli()"
FULL_SUBJECTS, FULL_SITES = 3500, 24


def _palmares(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"palmares {' '.join(args[:1])} failed: {done.stdout} {done.stderr}")
    return time.perf_counter() - start


_CHILD = """
import json, resource, sys, time
from palmares_desktop.core.exchange.merge import merge_files
from palmares_desktop.core.store import Store
with Store.open(sys.argv[1]) as store:
    store.use_system_reader("bench")
    start = time.perf_counter()
    result = merge_files(store, sys.argv[2:])
    took = time.perf_counter() - start
assert not result.refused, [o.reason for o in result.refused]
print(json.dumps({"s": took, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _merge_child(central: Path, packages: list[str]) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(central), *packages], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"merge failed: {done.stderr[-2000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["s"], out["rss_mb"]


def make_site(root: Path, site: str, subjects: int, features: int, rng: np.random.Generator) -> Path:
    from palmares_desktop.core.store import Store
    from palmares_desktop.core.store.store import new_id

    mask = np.zeros((6, 12, 12), np.uint8)
    mask[1:5, 3:9, 3:9] = 1
    image = sitk.GetImageFromArray(mask)
    image.SetSpacing((4.0, 4.0, 4.0))
    names = [f"original_feature_{j:04d}" for j in range(features)]
    with Store.open(root) as store:
        store.use_reader(store.add_reader(f"Dr Bench {site}", "radiologist", site))
        with store.transaction():
            for k in range(1, subjects + 1):
                subject = store.insert("subjects", {"code": f"{site}-{k:04d}", "site_code": site})
                study = store.insert(
                    "studies", {"subject_id": subject["id"], "study_uid": f"2.25.{rng.integers(1 << 62)}"}
                )
                series = {}
                for modality in ("CT", "PT"):
                    suv = (
                        {"suvbw_factor": 0.0004, "inputs": {"decay_time_s": 3600.0}}
                        if modality == "PT"
                        else None
                    )
                    series[modality] = store.insert("series", {
                        "study_id": study["id"], "subject_id": subject["id"], "modality": modality,
                        "series_uid": f"2.25.{rng.integers(1 << 62)}", "manufacturer": "SIEMENS",
                        "size_json": "[12, 12, 6]", "spacing_json": "[4.0, 4.0, 4.0]", "origin_json": "[0, 0, 0]",
                        "direction_json": "[1, 0, 0, 0, 1, 0, 0, 0, 1]", "suv_json": json.dumps(suv) if suv else None,
                        "pixel_path": f"volumes/none-{rng.integers(1 << 62)}.nrrd",
                    })  # fmt: skip
                for n in range(5):
                    lesion = store.insert(
                        "lesions", {"subject_id": subject["id"], "name": f"lesion {n + 1}", "organ": "liver"}
                    )
                    for modality, s in series.items():
                        seg = {"lesion_id": lesion["id"], "series_id": s["id"], "version": 1, "status": "final",
                               "reader_id": store.reader.id, "label": 1, "voxel_count": 144, "volume_ml": 9.2,
                               "method": "bench"}  # fmt: skip
                        seg_id = new_id()
                        path = store.files.mask(seg_id)
                        sitk.WriteImage(image, str(path), useCompression=True)
                        digest = hashlib.sha256(path.read_bytes()).hexdigest()
                        seg.update(id=seg_id, mask_path=store.files.relative(path), mask_sha256=digest)
                        row = store.insert("segmentations", seg)
                        values = dict(zip(names, rng.normal(size=features).round(6).tolist(), strict=True))
                        store.insert("feature_sets", {
                            "segmentation_id": row["id"], "series_id": s["id"], "lesion_id": lesion["id"],
                            "modality": modality, "params_name": f"{modality.lower()}.yaml", "params_sha256": "ab" * 32,
                            "image_sha256": "cd" * 32, "mask_sha256": digest, "status": "ok",
                            "features_json": json.dumps(values), "provenance_json": json.dumps({"pyradiomics": "3.1"}),
                        })  # fmt: skip
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=24)
    parser.add_argument("--subjects-per-site", type=int, default=6)
    parser.add_argument("--features", type=int, default=1200)
    args = parser.parse_args()

    from palmares_desktop.core.exchange import keyring
    from palmares_desktop.core.store import Store

    rng = np.random.default_rng(8)
    tmp = Path(tempfile.mkdtemp(prefix="bench-exchange-"))
    try:
        started = time.perf_counter()
        sites = {}
        for i in range(args.sites):
            code = f"IT{10 + i:02d}"
            sites[code] = make_site(tmp / code, code, args.subjects_per_site, args.features, rng)
        with Store.open(tmp / "centre") as centre:
            centre.use_system_reader("bench")
            keyring.init_keys(centre, centre=True)
            (tmp / "centre.pub").write_text(keyring.own_public(centre).to_json())
            for code, root in sites.items():
                with Store.open(root) as store:
                    store.use_system_reader("bench", code)
                    keyring.init_keys(store, centre=False)
                    keyring.trust_file(store, tmp / "centre.pub")
                    (tmp / f"{code}.pub").write_text(keyring.own_public(store).to_json())
                keyring.trust_file(centre, tmp / f"{code}.pub")
        subjects = args.sites * args.subjects_per_site
        print(f"scale: {args.sites} sites x {args.subjects_per_site} subjects = {subjects} subjects x 5 lesions x 2 "
              f"modalities x {args.features} features ({subjects * 10} segmentations; generated in "
              f"{time.perf_counter() - started:.0f} s)")  # fmt: skip

        import pydicom  # noqa: F401

        import palmares_desktop.core.pet.subject_pet  # noqa: F401 - warm imports: timed work only
        from palmares_desktop.core.exchange.package import export_package
        from palmares_desktop.core.exchange.table import write_table

        export_s, base_export = [], []
        for code, root in sites.items():
            with Store.open(root) as store:
                store.use_system_reader("bench", code)
                start = time.perf_counter()
                export_package(store, tmp / f"{code}.pkg")
                export_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            src, dst = sqlite3.connect(root / "palmares.db"), sqlite3.connect(tmp / f"{code}.copy.db")
            src.backup(dst)
            src.close(), dst.close()
            base_export.append(time.perf_counter() - start)
        size = np.mean([(tmp / f"{c}.pkg").stat().st_size for c in sites]) / 1e6
        per_site = FULL_SUBJECTS / FULL_SITES / args.subjects_per_site
        e = float(np.median(export_s))
        print(f"export, per site (median of {len(export_s)}, in process; {size:.1f} MB/package)")
        print(f"  ours                 {e:7.2f} s   extrapolated to {FULL_SUBJECTS / FULL_SITES:.0f} subjects/site: "
              f"{e * per_site:6.1f} s (goal < 10 s)")  # fmt: skip
        b = float(np.median(base_export))
        print(f"  SQLite backup copy   {b:7.2f} s   ratio {e / b:.1f}x")

        factor = FULL_SUBJECTS / subjects
        merge_times, peaks = {}, {}
        for n in (6, 12, 24):
            if n > args.sites:
                continue
            central = tmp / f"centre{n}"
            shutil.copytree(tmp / "centre", central)
            packages = [str(tmp / f"{c}.pkg") for c in list(sites)[:n]]
            merge_times[n], peaks[n] = _merge_child(central, packages)
        print("merge into an empty centre (one child process each; peak RSS of that process)")
        for n, t in merge_times.items():
            print(f"  {n:2d} packages         {t:7.2f} s   ({t / n:.2f} s/package, peak {peaks[n]:.0f} MB)")
        last = max(merge_times)
        full = merge_times[last] * FULL_SUBJECTS / (last * args.subjects_per_site)
        print(f"  extrapolated to 24 packages / {FULL_SUBJECTS} subjects: {full:6.1f} s (goal < 60 s); memory grows "
              f"with the largest package, not the number merged (goal < 2,048 MB)")  # fmt: skip
        start = time.perf_counter()
        base = sqlite3.connect(tmp / "naive.db")
        for i, code in enumerate(list(sites)[:last]):
            base.execute(f"ATTACH DATABASE ? AS s{i}", [str(tmp / f"{code}.copy.db")])
            verb = "CREATE TABLE feature_sets AS SELECT" if i == 0 else "INSERT INTO feature_sets SELECT"
            base.execute(f"{verb} * FROM s{i}.feature_sets")
            base.commit()
            base.execute(f"DETACH DATABASE s{i}")
        base.close()
        naive = time.perf_counter() - start
        print(f"  baseline ATTACH + INSERT SELECT of {last} sites' feature sets {naive:6.2f} s   "
              f"ratio {merge_times[last] / naive:.1f}x")  # fmt: skip

        central = tmp / f"centre{last}"
        with Store.open(central, read_only=True) as store:
            start = time.perf_counter()
            rows, columns = write_table(store, tmp / "table.parquet")
            table_s = time.perf_counter() - start
        print(
            f"wide table as Parquet ({rows} rows x {columns} columns, {last * args.subjects_per_site} subjects)"
        )
        print(f"  ours                 {table_s:7.2f} s   extrapolated to {FULL_SUBJECTS} subjects: "
              f"{table_s * FULL_SUBJECTS / (last * args.subjects_per_site):6.1f} s (goal < 30 s)")  # fmt: skip
        start = time.perf_counter()
        conn = sqlite3.connect(central / "palmares.db")
        for (text,) in conn.execute("SELECT features_json FROM feature_sets"):
            json.loads(text)
        conn.close()
        parse = time.perf_counter() - start
        print(f"  json.loads of every feature set alone {parse:6.2f} s   ratio {table_s / parse:.1f}x")
        del factor
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

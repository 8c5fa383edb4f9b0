"""A round's agreement (DOMAIN §8): per lesion and reading pair the mask numbers, per feature the ICC.

Pairs: every two readers on their first reading (inter-reader), and each reader's consecutive
repeats (intra-reader). Features: the ok feature sets of the round's segmentations computed with
one parameter file (the most used, named in the report), as a features x lesions x readers table
for inter-reader ICC(2,1) and ICC(3,1), and per reader over repeats for intra-reader ICC(3,1).
H&E rounds are in he_agreement.py (regions, not masks; subjects as ICC targets).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from palmares_desktop.core.agreement import (
    BlandAltman,
    bland_altman,
    feature_iccs,
    mask_agreement,
    robust_features,
)
from palmares_desktop.core.model import Segmentation
from palmares_desktop.core.store import Store, records
from palmares_desktop.core.store import rounds as rows
from palmares_desktop.core.store.segmentations import segmentation
from palmares_desktop.core.study.rounds import RoundError

# measure -> the pair columns of reading a and reading b
BLAND_ALTMAN_COLUMNS = {
    "volume_ml": ("volume_a_ml", "volume_b_ml"),
    "suv_mean": ("suv_mean_a", "suv_mean_b"),
    "area_mm2": ("area_a_mm2", "area_b_mm2"),  # H&E rounds: region area
}


@dataclass
class RoundReport:
    round_name: str
    modality: str
    readers: dict[str, str]  # id -> name
    pairs: list[dict] = field(default_factory=list)  # one row per lesion x reading pair
    features: list[dict] = field(default_factory=list)  # one row per feature x ICC kind x scope
    robust: dict[str, list[str]] = field(default_factory=dict)  # ICC kind -> robust feature names
    params_sha256: str | None = None
    notes: list[str] = field(default_factory=list)

    def bland_altman(self, measure: str, scope: str = "inter-reader") -> BlandAltman:
        """Bland-Altman of 'volume_ml' or (PET rounds) 'suv_mean' over the pairs of one scope."""
        a_key, b_key = BLAND_ALTMAN_COLUMNS[measure]
        chosen = [p for p in self.pairs if p["scope"] == scope]
        return bland_altman(measure, [p.get(a_key) for p in chosen], [p.get(b_key) for p in chosen])

    def icc_ranking(self, kind: str = "ICC(2,1)", scope: str = "inter-reader") -> list[dict]:
        """The features of one ICC kind and scope, best first (for the ranking plot)."""
        rows = [
            f for f in self.features if f["kind"] == kind and f["scope"] == scope and f["icc"] is not None
        ]
        return sorted(rows, key=lambda f: -f["icc"])

    def to_dict(self) -> dict:
        return {
            "round": self.round_name,
            "modality": self.modality,
            "readers": sorted(self.readers.values()),
            "params_sha256": self.params_sha256,
            "pairs": self.pairs,
            "features": self.features,
            "robust": self.robust,
            "notes": self.notes,
        }


def _mask(store: Store, seg: Segmentation) -> tuple[np.ndarray, tuple[float, ...]]:
    image = sitk.ReadImage(str(store.path(seg.mask_path)))
    return sitk.GetArrayFromImage(image) != 0, tuple(reversed(image.GetSpacing()))  # z, y, x


def _volume(store: Store, series_id: str) -> np.ndarray:
    """The stored volume of a series (PET in SUV), z, y, x."""
    series = records.series_row(store, series_id)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(store.path(series.pixel_path))))


def _mean_in(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(values[mask].mean()) if mask.any() else None


def clean(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def round_report(store: Store, name: str, threshold: float = 0.75) -> RoundReport:
    rnd = rows.round_named(store, name)
    found = rows.assignments(store, round_id=rnd["id"])
    names = {r.id: r.name for r in store.readers()}
    readers = {a["reader_id"]: names.get(a["reader_id"], a["reader_id"]) for a in found}
    report = RoundReport(rnd["name"], rnd["modality"], readers)
    if rnd["modality"] == "HE":
        from palmares_desktop.core.study.he_agreement import he_agreement

        he_agreement(store, report, found, readers, rnd["repeats"], threshold)
        if not report.pairs:
            raise RoundError(f"No reader has annotated a slide in round {name!r} yet.")
        return report
    by_assignment = {a["id"]: a for a in found}
    readings: dict[
        str, dict[tuple[str, int], Segmentation]
    ] = {}  # lesion id -> (reader, repeat) -> segmentation
    for work in rows.work_of(store, list(by_assignment)):
        a = by_assignment[work["assignment_id"]]
        readings.setdefault(work["lesion_id"], {})[(a["reader_id"], a["repeat"])] = segmentation(
            store, work["segmentation_id"]
        )
    if not readings:
        raise RoundError(f"No reader has saved a segmentation in round {name!r} yet.")
    lesion_names = {lid: records.lesion_row(store, lid).name for lid in readings}
    reader_ids = sorted(readers, key=lambda r: readers[r])
    pairs = [((a, 1), (b, 1), "inter-reader") for a, b in itertools.combinations(reader_ids, 2)]
    pairs += [((r, k), (r, k + 1), "intra-reader") for r in reader_ids for k in range(1, rnd["repeats"])]
    pet_volumes: dict[str, np.ndarray] = {}  # series id -> SUV array, read once
    for lesion_id, by_reading in sorted(readings.items(), key=lambda kv: lesion_names[kv[0]]):
        for first, second, scope in pairs:
            if first not in by_reading or second not in by_reading:
                continue
            a_seg, b_seg = by_reading[first], by_reading[second]
            row = {
                "lesion": lesion_names[lesion_id],
                "scope": scope,
                "reader_a": readers[first[0]],
                "reading_a": first[1],
                "reader_b": readers[second[0]],
                "reading_b": second[1],
            }
            if a_seg.series_id != b_seg.series_id:
                report.notes.append(f"{row['lesion']}: the two readings are on different series; skipped.")
                continue
            (ma, spacing), (mb, _) = _mask(store, a_seg), _mask(store, b_seg)
            numbers = mask_agreement(ma, mb, spacing)
            row.update({k: clean(v) for k, v in numbers.__dict__.items()})
            if rnd["modality"] == "PT":
                suv = pet_volumes.setdefault(a_seg.series_id, _volume(store, a_seg.series_id))
                row["suv_mean_a"], row["suv_mean_b"] = _mean_in(suv, ma), _mean_in(suv, mb)
            report.pairs.append(row)
    _feature_agreement(store, report, readings, lesion_names, reader_ids, rnd["repeats"], threshold)
    return report


def _feature_agreement(store, report, readings, lesion_names, reader_ids, repeats, threshold) -> None:
    sets: dict[str, dict] = {}  # segmentation id -> chosen feature set
    all_sets = {
        seg.id: [f for f in records.feature_sets_of(store, seg.id) if f.ok]
        for by_reading in readings.values()
        for seg in by_reading.values()
    }
    used = Counter(f.params_sha256 for fs in all_sets.values() for f in fs)
    if not used:
        report.notes.append(
            "No features are computed for this round's segmentations yet (run radiomics batch)."
        )
        return
    params = used.most_common(1)[0][0]
    report.params_sha256 = params
    for seg_id, fs in all_sets.items():
        chosen = [f for f in fs if f.params_sha256 == params]
        if chosen:
            sets[seg_id] = dict(chosen[0].features)
    names = sorted({k for v in sets.values() for k, x in v.items() if isinstance(x, (int, float))})
    lesions = sorted(readings, key=lambda lid: lesion_names[lid])

    def table(raters: list[tuple[str, int]]) -> np.ndarray:
        values = np.full((len(names), len(lesions), len(raters)), np.nan)
        for j, lid in enumerate(lesions):
            for k, reading in enumerate(raters):
                seg = readings[lid].get(reading)
                feats = sets.get(seg.id) if seg else None
                if feats:
                    values[:, j, k] = [float(feats.get(n, np.nan)) for n in names]
        return values

    iccs(report, table, names, reader_ids, repeats, threshold)


def iccs(report, table, names, reader_ids, repeats, threshold) -> None:
    """Inter-reader ICC(2,1) and ICC(3,1) over first readings, intra-reader ICC(3,1) over each
    reader's repeats; `table(raters)` gives the features x targets x raters values."""
    scopes = []
    if len(reader_ids) >= 2:
        scopes.append(("inter-reader", [(r, 1) for r in reader_ids], ("ICC(2,1)", "ICC(3,1)")))
    for r in reader_ids if repeats >= 2 else []:
        scopes.append(
            (f"intra-reader {report.readers[r]}", [(r, k) for k in range(1, repeats + 1)], ("ICC(3,1)",))
        )
    for scope, raters, kinds in scopes:
        values = table(raters)
        for kind in kinds:
            results = feature_iccs(values, names, kind)
            report.robust[f"{scope} {kind}"] = robust_features(results, threshold)
            for r in results:
                report.features.append(
                    {
                        "scope": scope,
                        **{k: clean(v) for k, v in r.__dict__.items()},
                        "robust": r.icc >= threshold,
                    }
                )


def write_report(report: RoundReport, out: Path) -> list[Path]:
    """`out` gets the feature table; `<stem>_masks<suffix>` the mask agreement (CSV or Parquet)."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise RoundError(
            f"Write the report as .csv or .parquet, not {out.suffix or 'a file without suffix'}."
        )
    written = []
    for table, path in (
        (report.features, out),
        (report.pairs, out.with_name(f"{out.stem}_masks{out.suffix}")),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(table), path)
        else:
            with open(path, "w", newline="", encoding="utf-8") as handle:
                columns = list(table[0]) if table else []
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(table)
        written.append(path)
    return written

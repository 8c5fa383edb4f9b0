"""`palmares table`: the centre's analysis table, wide (one row per subject x lesion x modality x reader
x parameter-file hash, every feature a column) or long (one row per value, with its provenance).

Per row: site, subject, lesion and its site (organ) and RECIST status, the segmentation version and
reader, the lesion's PET metrics, the subject's totals (total MTV, TLG, lesion count, Dmax), and the
acquisition covariates for harmonisation (manufacturer, model, reconstruction kernel and method,
slice thickness, voxel size, SUV normalisation, uptake time, scanner field of view). H&E rows are
one per slide, with annotation counts and areas per class.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.modalities import code_of
from palmares_desktop.core.store import Store, exchange_rows

PET_LESION = ["suv_max", "suv_mean", "suv_peak", "sul_peak", "mtv_ml", "tlg"]
TOTALS = ["total_mtv_ml", "total_tlg", "lesion_count", "dmax_mm"]
COVARIATES = [
    "manufacturer", "model", "kernel", "reconstruction_method", "slice_thickness_mm", "voxel_size_x_mm",
    "voxel_size_y_mm", "voxel_size_z_mm", "suv_normalisation", "uptake_time_min", "scanner_fov_mm",
]  # fmt: skip
KEYS = [
    "site", "subject", "lesion", "lesion_site", "recist_status", "modality", "reader", "params_sha256",
    "params_name", "segmentation_id", "segmentation_version", "volume_ml",
]  # fmt: skip


class TableError(PalmaresError):
    """The table cannot be written (plain sentence)."""


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _covariates(store: Store) -> dict[str, dict]:
    acquisition = {
        r["series_id"]: _dict(r["covariates"]) for r in exchange_rows.table_rows(store, "acquisition")
    }
    out = {}
    for s in exchange_rows.table_rows(store, "series"):
        found = acquisition.get(s["id"], {})
        spacing = s["spacing"] or [None, None, None]
        suv = _dict(s["suv"])
        inputs = suv.get("inputs") or {}
        decay = inputs.get("decay_time_s")
        out[s["id"]] = {
            "manufacturer": found.get("manufacturer") or s["manufacturer"],
            "model": found.get("model"),
            "kernel": found.get("kernel"),
            "reconstruction_method": found.get("reconstruction_method"),
            "slice_thickness_mm": found.get("slice_thickness_mm"),
            "voxel_size_x_mm": spacing[0],
            "voxel_size_y_mm": spacing[1],
            "voxel_size_z_mm": spacing[2],
            "suv_normalisation": ("SUVbw" if suv.get("suvbw_factor") else None)
            if s["modality"] == "PT"
            else None,
            "uptake_time_min": round(decay / 60.0, 2) if isinstance(decay, (int, float)) else None,
            "scanner_fov_mm": found.get("scanner_fov_mm"),
        }
    return out


def _pet(store: Store) -> tuple[dict, dict]:
    lesions, totals = {}, {}
    for r in exchange_rows.table_rows(store, "pet_metrics"):
        metrics = _dict(r["metrics"])
        totals[r["code"]] = metrics.get("totals") or {}
        for lesion in metrics.get("lesions") or []:
            lesions[(r["code"], lesion.get("name"))] = lesion
    return lesions, totals


def _latest_features(store: Store) -> dict[str, list[dict]]:
    """segmentation id -> its newest successful feature set per parameter file."""
    out: dict[str, list[dict]] = {}
    for r in exchange_rows.latest_feature_sets(store):  # ordered by time: newest wins
        out.setdefault(r["segmentation_id"], []).append(r)
    return out


def _segment_rows(
    store: Store, want: str | None, features: dict[str, list], covariates: dict
) -> Iterator[tuple[dict, dict, dict, dict | None]]:
    """(segmentation, its extra columns, its row without feature values, the feature set or None), one
    per segmentation x feature set, in the table's order."""
    pet_lesions, pet_totals = _pet(store)
    for seg in exchange_rows.table_rows(store, "segmented"):
        if want and seg["modality"] != want:
            continue
        base = {
            "site": seg["site"], "subject": seg["subject"], "lesion": seg["lesion"],
            "lesion_site": seg["lesion_site"], "recist_status": seg["recist_status"], "modality": seg["modality"],
            "reader": seg["reader"] or seg["reader_id"], "segmentation_id": seg["segmentation_id"],
            "segmentation_version": seg["segmentation_version"], "volume_ml": seg["volume_ml"],
        }  # fmt: skip
        extra: dict = {}
        if seg["modality"] == "PT":
            found = pet_lesions.get((seg["subject"], seg["lesion"]), {})
            extra.update({f"pet_{k}": found.get(k) for k in PET_LESION})
        totals = pet_totals.get(seg["subject"], {})
        extra.update({f"subject_{k}": totals.get(k) for k in TOTALS})
        extra.update(covariates.get(seg["series_id"], {}))
        sets = features.get(seg["segmentation_id"]) or [None]
        for fs in sets:
            row = {
                **base,
                "params_sha256": fs["params_sha256"] if fs else None,
                "params_name": fs["params_name"] if fs else None,
                **extra,
            }
            yield seg, extra, row, fs


def build(
    store: Store, modality: str | None = None, long_values: bool = False
) -> tuple[list[dict], list[tuple]]:
    """(wide rows, long values): the long values (row index, variable, value, provenance) only when asked."""
    want = code_of(modality) if modality else None
    covariates = _covariates(store)
    features = _latest_features(store)
    rows: list[dict] = []
    long: list[tuple] = []
    for seg, extra, row, fs in _segment_rows(store, want, features, covariates):
        index = len(rows)
        for k, v in extra.items() if long_values else ():
            source = (
                "site PET metrics" if k.startswith(("pet_", "subject_")) else f"series {seg['series_id']}"
            )
            long.append((index, k, v, source))
        if fs:
            provenance = _dict(fs["provenance"])
            note = f"feature set of segmentation {seg['segmentation_id']}, {fs['params_name']} ({fs['params_sha256'][:12]}), {provenance.get('pyradiomics_version') or provenance.get('versions') or ''}"
            numbers = _numbers(_dict(fs["features"]))
            row.update(numbers)
            if long_values:
                long.extend((index, name, value, note) for name, value in numbers.items())
        rows.append(row)
    if want in (None, "HE"):
        rows += _slide_rows(store, covariates, long, len(rows))
    return rows, long


def _columns_of(rows: list[dict]) -> dict[str, list]:
    """Column name -> its values, for dict rows: KEYS first, then every other key where it first appears."""
    seen: dict = {}
    for r in rows:
        seen.update(r)  # first appearance fixes a column's place (update never moves a key)
    columns = list(KEYS) + [c for c in seen if c not in KEYS]
    del seen
    # Row-major values by C-level look-ups, then transposed: one list per column.
    cells = [list(map(r.get, columns)) for r in rows]
    values = list(zip(*cells, strict=True)) if cells else [() for _ in columns]
    del cells
    return {c: list(v) for c, v in zip(columns, values, strict=True)}


def _wide_table(store: Store, modality: str | None) -> pa.Table:
    """The wide table, as `build` rows would make it, without a dict per row of every feature value:
    each feature set is kept as one float64 array (its names shared by every set with the same names)
    and feature columns are filled from those arrays. Should a feature be named like another column,
    the rows are built as dicts instead (the value that wins there is the dict's)."""
    want = code_of(modality) if modality else None
    covariates = _covariates(store)
    names: dict[tuple, int] = {}  # feature names of a set -> its id
    features: dict[str, list[dict]] = {}
    for r in exchange_rows.latest_feature_sets(store):
        numbers = _numbers(_dict(r["features"]))
        kid = names.setdefault(tuple(numbers), len(names))
        values = np.fromiter(numbers.values(), dtype=np.float64, count=len(numbers))
        features.setdefault(r["segmentation_id"], []).append(
            {
                "params_sha256": r["params_sha256"],
                "params_name": r["params_name"],
                "kid": kid,
                "values": values,
            }
        )
        del r, numbers
    heads: list[dict] = []
    sets: list[dict | None] = []
    for _seg, _extra, row, fs in _segment_rows(store, want, features, covariates):
        heads.append(row)
        sets.append(fs)
    del features
    if want in (None, "HE"):
        slides = _slide_rows(store, covariates, [], len(heads))
        heads += slides
        sets += [None] * len(slides)
    by_id = [k for k, _ in sorted(names.items(), key=lambda x: x[1])]
    feature_names = {n for k in by_id for n in k}
    head_names: set = set()
    for h in heads:
        head_names.update(h)
    if feature_names & head_names:  # a feature named like a column: the dict rows' way, exactly
        rows = []
        for h, fs in zip(heads, sets, strict=True):
            if fs:
                h.update(zip(by_id[fs["kid"]], fs["values"].tolist(), strict=True))
            rows.append(h)
        return pa.table(_columns_of(rows))
    seen: dict = {}
    merged: set[int] = set()
    for h, fs in zip(heads, sets, strict=True):
        seen.update(h)
        if fs and fs["kid"] not in merged:
            merged.add(fs["kid"])
            seen.update(dict.fromkeys(by_id[fs["kid"]]))
    columns = list(KEYS) + [c for c in seen if c not in KEYS]
    del seen
    feature_columns = [c for c in columns if c in feature_names]
    place = {c: i for i, c in enumerate(feature_columns)}
    # Only the name sets of rows in this table: a filtered-out set (another modality, an older
    # version) may carry names no kept row has.
    where = {
        kid: np.fromiter((place[n] for n in by_id[kid]), dtype=np.intp, count=len(by_id[kid]))
        for kid in merged
    }
    matrix = np.zeros((len(feature_columns), len(heads)), dtype=np.float64)
    present = np.zeros(matrix.shape, dtype=bool)
    for i, fs in enumerate(sets):
        if fs:
            matrix[where[fs["kid"]], i] = fs["values"]
            present[where[fs["kid"]], i] = True
    del sets
    small = _columns_of(heads)
    data = {}
    for c in columns:
        if c in place:
            j = place[c]
            mask = None if present[j].all() else ~present[j]
            data[c] = pa.array(matrix[j], type=pa.float64(), mask=mask)
        else:
            data[c] = small[c]
    return pa.table(data)


def _numbers(features: dict) -> dict:
    """The numeric feature values as floats (booleans, text and nested values left out). A set whose
    values are all floats already (pyradiomics' usual output) is taken as it is, without a copy."""
    if set(map(type, features.values())) <= {float}:
        return features
    return {k: float(v) for k, v in features.items() if type(v) in (int, float)}


def _slide_rows(store: Store, covariates: dict, long: list, start: int) -> list[dict]:
    per_slide: dict[str, dict] = {}
    for a in exchange_rows.table_rows(store, "annotations"):
        counts = per_slide.setdefault(a["slide_id"], {})
        name = (a["classification"] or "unclassified").lower().replace(" ", "_")
        counts[f"he_count_{name}"] = counts.get(f"he_count_{name}", 0) + 1
        area = _dict(a["measurements"]).get("area_um2")
        if isinstance(area, (int, float)):
            counts[f"he_area_um2_{name}"] = counts.get(f"he_area_um2_{name}", 0.0) + float(area)
    out = []
    for s in exchange_rows.table_rows(store, "slides"):
        row = {"site": s["site"], "subject": s["subject"], "modality": "HE", "reader": s["reader"] or s["reader_id"],
               "segmentation_id": s["slide_id"], **per_slide.get(s["slide_id"], {})}  # fmt: skip
        for k, v in per_slide.get(s["slide_id"], {}).items():
            long.append((start + len(out), k, v, f"slide {s['slide_id']} annotations"))
        out.append(row)
    return out


def write_table(
    store: Store, out: Path, modality: str | None = None, long_format: bool = False
) -> tuple[int, int]:
    """Write the table to `out` (.parquet or .csv); returns (rows, columns)."""
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise TableError(f"{out.name}: the table is written as .parquet or .csv.")
    if long_format:
        rows, long = build(store, modality, long_format)
        keys = ["site", "subject", "lesion", "modality", "reader", "params_sha256", "segmentation_id"]
        data = {k: [rows[i].get(k) for i, *_ in long] for k in keys}
        data["variable"] = [v for _i, v, _x, _p in long]
        data["value"] = [None if x is None else str(x) for _i, _v, x, _p in long]
        data["provenance"] = [p for *_r, p in long]
        table = pa.table(data)
    else:
        table = _wide_table(store, modality)
    tmp = out.with_name(f".{out.name}.part")
    if out.suffix.lower() == ".parquet":
        pq.write_table(table, tmp)
    else:
        pacsv.write_csv(table, tmp)
    tmp.replace(out)
    return table.num_rows, table.num_columns

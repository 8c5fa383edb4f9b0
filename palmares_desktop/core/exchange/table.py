"""`palmares table`: the centre's analysis table, wide (one row per subject x lesion x modality x reader
x parameter-file hash, every feature a column) or long (one row per value, with its provenance).

Per row: site, subject, lesion and its site (organ) and RECIST status, the segmentation version and
reader, the lesion's PET metrics, the subject's totals (total MTV, TLG, lesion count, Dmax), and the
acquisition covariates for harmonisation (manufacturer, model, reconstruction kernel and method,
slice thickness, voxel size, SUV normalisation, uptake time, scanner field of view). H&E rows are
one per slide, with annotation counts and areas per class.
"""

from __future__ import annotations

from pathlib import Path

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
    out: dict[str, dict[str, dict]] = {}
    for r in exchange_rows.table_rows(store, "features"):
        out.setdefault(r["segmentation_id"], {})[r["params_sha256"]] = r  # ordered by time: newest wins
    return {k: list(v.values()) for k, v in out.items()}


def build(
    store: Store, modality: str | None = None, long_values: bool = False
) -> tuple[list[dict], list[tuple]]:
    """(wide rows, long values): the long values (row index, variable, value, provenance) only when asked."""
    want = code_of(modality) if modality else None
    covariates = _covariates(store)
    pet_lesions, pet_totals = _pet(store)
    features = _latest_features(store)
    rows: list[dict] = []
    long: list[tuple] = []
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
            index = len(rows)
            for k, v in extra.items() if long_values else ():
                source = (
                    "site PET metrics" if k.startswith(("pet_", "subject_")) else f"series {seg['series_id']}"
                )
                long.append((index, k, v, source))
            if fs:
                provenance = _dict(fs["provenance"])
                note = f"feature set of segmentation {seg['segmentation_id']}, {fs['params_name']} ({fs['params_sha256'][:12]}), {provenance.get('pyradiomics_version') or provenance.get('versions') or ''}"
                numbers = {k: float(v) for k, v in _dict(fs["features"]).items() if type(v) in (int, float)}
                row.update(numbers)
                if long_values:
                    long.extend((index, name, value, note) for name, value in numbers.items())
            rows.append(row)
    if want in (None, "HE"):
        rows += _slide_rows(store, covariates, long, len(rows))
    return rows, long


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
    rows, long = build(store, modality, long_format)
    if long_format:
        keys = ["site", "subject", "lesion", "modality", "reader", "params_sha256", "segmentation_id"]
        data = {k: [rows[i].get(k) for i, *_ in long] for k in keys}
        data["variable"] = [v for _i, v, _x, _p in long]
        data["value"] = [None if x is None else str(x) for _i, _v, x, _p in long]
        data["provenance"] = [p for *_r, p in long]
        table = pa.table(data)
    else:
        columns = list(KEYS) + [c for c in dict.fromkeys(k for r in rows for k in r) if c not in KEYS]
        table = pa.table({c: [r.get(c) for r in rows] for c in columns})
    tmp = out.with_name(f".{out.name}.part")
    if out.suffix.lower() == ".parquet":
        pq.write_table(table, tmp)
    else:
        pacsv.write_csv(table, tmp)
    tmp.replace(out)
    return table.num_rows, table.num_columns

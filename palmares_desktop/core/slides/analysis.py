"""The slide room's one-call analyses on a registered slide, stored with provenance.

Each function takes the store, the slide row and its local file, computes with core.slides and
writes through core/store/slide_objects.py: the tissue outline becomes an editable annotation,
cell detection a packed detection run (one per region), the TILs helper a measurement holding the
pathologist's value with the aid beside it. The GUI and the CLI call these and only present them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from palmares_desktop.core.model import Slide
from palmares_desktop.core.slides.cells import MEASUREMENTS, CellParams, detect_cells
from palmares_desktop.core.slides.detections import Detections, pack_tiles, unpack
from palmares_desktop.core.slides.measure import slide_stains, versions
from palmares_desktop.core.slides.reader import SlideError, open_slide
from palmares_desktop.core.slides.tils import TilsError, stromal_tils
from palmares_desktop.core.slides.tissue import TissueParams, detect_tissue
from palmares_desktop.core.store import slide_objects as repo

TISSUE_NAME = "Tissue"
NUCLEI_METHOD = "nuclei-watershed"


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tissue(store, slide: Slide, path: str | Path, params: TissueParams = TissueParams()) -> dict:
    """Detect the tissue outline and save it as one editable annotation named 'Tissue'."""
    info = open_slide(path)
    found = detect_tissue(path, info, params)
    if found.geometry.is_empty:
        raise SlideError(f"No tissue was found on slide {slide.display_name} (it looks like bare glass).")
    provenance = {
        "slide_sha256": slide.sha256,
        "versions": versions(),
        "computed_at": _stamp(),
        **found.to_dict(),
    }
    (annotation_id,) = repo.save_annotations(
        store,
        slide,
        [{"geometry": found.geometry, "name": TISSUE_NAME, "measurements": {"tissue": provenance}}],
    )
    return {"annotation_id": annotation_id, **found.to_dict()}


def _regions(store, slide: Slide, annotation_ids=None, classification: str | None = None) -> list[dict]:
    objects = [  # regions only: cell points have no area to detect in
        o
        for o in repo.annotations_of(store, slide.id, kind="annotation")
        if o["geometry"].geom_type in ("Polygon", "MultiPolygon")
    ]
    if annotation_ids:
        wanted = set(annotation_ids)
        objects = [o for o in objects if o["id"] in wanted]
    elif classification:
        objects = [o for o in objects if o["classification"] == classification]
    if not objects:
        what = f"of class {classification}" if classification else "to detect cells in"
        raise SlideError(
            f"Slide {slide.display_name} has no annotation {what}: draw or import a region first."
        )
    return objects


def cells(
    store,
    slide: Slide,
    path: str | Path,
    annotation_ids=None,
    classification: str | None = None,
    params=CellParams(),
) -> list[dict]:
    """Detect nuclei in each chosen annotation; one detection run per region. Returns per region:
    annotation id, count, area (mm², when MPP is known), density per mm², small round nuclei."""
    info = open_slide(path)
    stains = slide_stains(path, info)
    out = []
    for region in _regions(store, slide, annotation_ids, classification):
        found, read = detect_cells(path, info, region["geometry"], stains, params)
        run = repo.save_detection_run(
            store,
            slide,
            {
                "annotation_id": region["id"],
                "method": NUCLEI_METHOD,
                "classification": "Nucleus",
                "measurement_names": list(MEASUREMENTS),
                "parameters": params.to_dict(),
                "provenance": {
                    "slide_sha256": slide.sha256,
                    "stains": stains.to_dict(),
                    "read": read,
                    "versions": versions(),
                    "computed_at": _stamp(),
                },
            },
            pack_tiles(found),
        )
        area_mm2 = (
            region["geometry"].area * info.mpp_x * info.mpp_y / 1e6 if info.mpp_x and info.mpp_y else None
        )
        small = int((found.column("small_round") > 0.5).sum()) if len(found) else 0
        out.append(
            {
                "annotation_id": region["id"],
                "run_id": run["id"],
                "classification": region["classification"],
                "count": len(found),
                "small_round": small,
                "area_mm2": area_mm2,
                "density_per_mm2": len(found) / area_mm2 if area_mm2 else None,
                "stains": stains.method,
            }
        )
    return out


def detections(store, slide: Slide, bbox=None, run_ids=None) -> Detections:
    """Every stored detection of the slide (or those in `bbox`, level-0 x0, y0, x1, y1), one array set."""
    runs = {r["id"]: r for r in repo.detection_runs_of(store, slide.id)}
    parts = []
    for tile in repo.detection_tiles(store, slide.id, bbox=bbox, run_ids=run_ids):
        run = runs[tile["run_id"]]
        parts.append(unpack(tile["data"], run["measurement_names"], run["parameters"].get("class_names", [])))
    return Detections.concatenate(parts) if parts else Detections.empty(MEASUREMENTS)


def tils(store, slide: Slide, pathologist_percent: float | None = None, save: bool = True) -> dict:
    """The TILs panel: annotation-based stromal fraction and the nuclei aid; with the pathologist's
    value given, store it (0-100) with the aid beside it."""
    objects = repo.annotations_of(store, slide.id, kind="annotation")
    found = detections(store, slide)
    if len(found) and "small_round" not in found.measurement_names:
        found = None
    result = stromal_tils(
        objects, (slide.mpp_x, slide.mpp_y), found if found is not None and len(found) else None
    )
    out = {"aid": result.to_dict(), "pathologist_percent": pathologist_percent}
    if pathologist_percent is not None:
        if not 0 <= pathologist_percent <= 100:
            raise TilsError(
                f"A stromal TILs score is a percentage from 0 to 100, not {pathologist_percent:g}."
            )
        if save:
            stored = repo.add_measurement(
                store,
                slide.id,
                None,
                "tils",
                {"stromal_tils_percent": float(pathologist_percent), "aid": result.to_dict()},
                {
                    "rules": "International TILs Working Group 2014 (stromal area, invasive border, exclusions)",
                    "slide_sha256": slide.sha256,
                    "annotations": len(objects),
                    "detections": len(found) if found is not None else 0,
                    "versions": versions(),
                    "computed_at": _stamp(),
                },
            )
            out["measurement_id"] = stored["id"]
    return out


def class_counts(found: Detections) -> dict:
    return {
        "count": len(found),
        "small_round": int(np.sum(found.column("small_round") > 0.5)) if len(found) else 0,
    }

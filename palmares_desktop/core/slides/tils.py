"""Stromal TILs helper (International TILs Working Group, Salgado et al. 2015; DOMAIN.md §7).

The score is the percentage of *stromal area* inside the invasive border occupied by mononuclear
inflammatory cells, excluding in situ carcinoma, normal ducts/lobules, necrosis and crush or other
artefacts; it is reported continuously and, for display, rounded to 5%.

From the pathologist's annotations (study classes): the invasive border is the union of
"Invasive tumour" outlines (when there is none, the stroma outlines are taken as they are); the
stroma is the union of "Tumour stroma" outlines inside that border, minus the excluded classes;
the infiltrate is the union of "Lymphocytic infiltrate" outlines inside that stroma. The panel's
value is area(infiltrate) / area(stroma). As an aid only, beside it: the density (per mm²) of
small round nuclei (cell detection's lymphocyte-like flag) with centroids in the stroma, and the
fraction of stromal area their outlines cover. The pathologist's value is what is stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import shapely

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.slides.detections import Detections

BORDER = "Invasive tumour"
STROMA = "Tumour stroma"
INFILTRATE = "Lymphocytic infiltrate"
EXCLUDED = ("In situ carcinoma", "Normal ducts/lobules", "Necrosis", "Artefact")


class TilsError(PalmaresError):
    """A TILs estimate that cannot be made (message is a plain sentence)."""


@dataclass
class TilsResult:
    stromal_area_mm2: float
    infiltrate_area_mm2: float
    annotation_percent: float  # continuous, from the pathologist's annotations
    annotation_percent_rounded: int  # to 5%, for display
    small_round_nuclei: int | None  # aid: lymphocyte-like nuclei in the stroma
    small_round_density_per_mm2: float | None
    small_round_area_percent: float | None
    border_from: str  # "Invasive tumour outline" | "stroma outlines (no invasive border drawn)"
    excluded_area_mm2: float

    def to_dict(self) -> dict:
        return asdict(self)


def round_to_5(percent: float) -> int:
    return int(5 * np.floor(percent / 5 + 0.5))


def _polygonal(geometry):
    """Only the areas of `geometry`: outlines that merely touch intersect in lines and points, which
    have no area and make later overlays fail (GEOS refuses mixed collections)."""
    parts = [g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.unary_union(parts) if parts else shapely.Polygon()


def _union(objects: list[dict], name: str):
    """The area of the class's outlines (cell points have none)."""
    shapes = [o["geometry"] for o in objects if o.get("classification") == name]
    return _polygonal(shapely.unary_union(shapes)) if shapes else shapely.Polygon()


def stromal_tils(
    objects: list[dict], mpp: tuple[float | None, float | None], detections: Detections | None = None
) -> TilsResult:
    """The TILs panel's numbers from annotation dicts (classification, shapely geometry, level-0 px)."""
    mpp_x, mpp_y = mpp
    if not mpp_x or not mpp_y:
        raise TilsError("The slide has no known pixel size (MPP): stromal areas in mm² cannot be measured.")
    to_mm2 = mpp_x * mpp_y / 1e6
    border = _union(objects, BORDER)
    stroma = _union(objects, STROMA)
    if stroma.is_empty:
        raise TilsError(
            f"Draw the tumour stroma ('{STROMA}') inside the invasive border first: there is none."
        )
    border_from = "Invasive tumour outline"
    if border.is_empty:
        border_from = "stroma outlines (no invasive border drawn)"
    else:
        stroma = _polygonal(stroma.intersection(border))
        if stroma.is_empty:
            raise TilsError(
                f"The tumour stroma ('{STROMA}') lies outside the invasive border ('{BORDER}'): "
                "draw the stroma inside it."
            )
    excluded = shapely.unary_union([_union(objects, name) for name in EXCLUDED])
    excluded_area = stroma.intersection(excluded).area if not excluded.is_empty else 0.0
    if not excluded.is_empty:
        stroma = _polygonal(stroma.difference(excluded))
    if stroma.area <= 0:
        raise TilsError("No stroma is left inside the invasive border once the excluded regions are removed.")
    infiltrate = _union(objects, INFILTRATE).intersection(stroma)
    percent = 100.0 * infiltrate.area / stroma.area
    count = density = covered = None
    if detections is not None and len(detections):
        inside = shapely.contains_xy(stroma, detections.centroids[:, 0], detections.centroids[:, 1])
        small = inside & (detections.column("small_round") > 0.5)
        count = int(small.sum())
        density = count / (stroma.area * to_mm2)
        covered = 100.0 * float(detections.column("area_um2")[small].sum()) / (stroma.area * mpp_x * mpp_y)
    return TilsResult(
        stromal_area_mm2=stroma.area * to_mm2,
        infiltrate_area_mm2=infiltrate.area * to_mm2,
        annotation_percent=percent,
        annotation_percent_rounded=round_to_5(percent),
        small_round_nuclei=count,
        small_round_density_per_mm2=density,
        small_round_area_percent=covered,
        border_from=border_from,
        excluded_area_mm2=excluded_area * to_mm2,
    )

"""Agreement of an H&E reading round (DOMAIN §8): regions instead of masks, subjects as ICC targets.

A reading is one reader's annotations on the subject's slide made in one repeat; per region class
it is the union of that reader's polygons (computed once, used by every number below).
- Per subject, class and reading pair: Dice of the rasterised regions and the area difference.
- ICC per feature '<class> <feature>' with subjects as targets, over three kinds of feature:
  shape (area mm², perimeter mm, pieces, compactness: exact shapely geometry), stain (mean and SD of
  hematoxylin and eosin optical density, slide's own Macenko vectors) and pyradiomics 2D features
  of the `he` preset. Stain and radiomics need the slide's pixels: where this store cannot find the
  slide file (e.g. at the coordinating centre) they are left out and the report says so.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from palmares_desktop.core.agreement.regions import region_agreement
from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Slide
from palmares_desktop.core.store import Store, records

#: Shape features of a reader's region of one class (the union of its polygons), for H&E ICC.
REGION_FEATURES = ("area", "perimeter", "pieces", "compactness")
STAIN_FEATURES = ("hematoxylin_od_mean", "hematoxylin_od_sd", "eosin_od_mean", "eosin_od_sd")

Reading = tuple[str, str, int]  # subject id, reader id, repeat


def he_agreement(store: Store, report, assignments: list[dict], readers: dict, repeats: int, threshold):
    """Fill `report` (study.report.RoundReport) with the pairs and ICCs of an H&E round."""
    readings = he_readings(store, assignments)
    slides = {}
    for subject_id in {a["subject_id"] for a in assignments}:
        found = records.slides_of_subject(store, subject_id)
        slides[subject_id] = found[0] if found else None
    _pairs(store, report, readings, slides, readers, repeats)
    if report.pairs:
        _feature_iccs(store, report, readings, slides, readers, repeats, threshold)


def he_readings(store: Store, assignments: list[dict]) -> dict[Reading, dict[str, object]]:
    """(subject id, reader id, repeat) -> classification -> union of the polygons. A reading is the
    reader's annotations on the subject's slides made after their previous repeat was marked done and
    not after this one was (open readings: up to now)."""
    import shapely

    from palmares_desktop.core.store.slide_objects import annotations_of

    polygons: dict[Reading, dict[str, list]] = {}
    by_reader_subject: dict[tuple[str, str], list[dict]] = {}
    for a in assignments:
        by_reader_subject.setdefault((a["subject_id"], a["reader_id"]), []).append(a)
    for (subject_id, reader_id), chain in by_reader_subject.items():
        objects = [
            o
            for slide in records.slides_of_subject(store, subject_id)
            for o in annotations_of(store, slide.id, kind="annotation")
            if o["author_id"] == reader_id
        ]
        start = ""
        for a in sorted(chain, key=lambda x: x["repeat"]):
            end = a["done_at"] or "9999"
            regions = polygons.setdefault((subject_id, reader_id, a["repeat"]), {})
            for o in objects:
                if start < o["created_at"] <= end:
                    regions.setdefault(o["classification"] or "unclassified", []).append(o["geometry"])
            start = end
    return {
        key: {c: shapely.union_all(found) for c, found in regions.items()}
        for key, regions in polygons.items()
    }


def _reading_pairs(readers: dict, repeats: int) -> tuple[list[str], list]:
    reader_ids = sorted(readers, key=lambda r: readers[r])
    pairs = [((a, 1), (b, 1), "inter-reader") for a, b in itertools.combinations(reader_ids, 2)]
    pairs += [((r, k), (r, k + 1), "intra-reader") for r in reader_ids for k in range(1, repeats)]
    return reader_ids, pairs


def _pairs(store, report, readings, slides, readers, repeats) -> None:
    """Per subject, region class and reading pair: Dice of the rasterised regions, area difference."""
    from palmares_desktop.core.study.report import clean

    _, pairs = _reading_pairs(readers, repeats)
    for subject_id in sorted(slides):
        code = records.subject(store, subject_id).code
        mpp = slides[subject_id].mpp_x if slides[subject_id] else None
        for (ra, ka), (rb, kb), scope in pairs:
            a = readings.get((subject_id, ra, ka), {})
            b = readings.get((subject_id, rb, kb), {})
            for region in sorted(set(a) | set(b)):
                numbers = region_agreement(
                    [a[region]] if region in a else [], [b[region]] if region in b else [], mpp
                )
                report.pairs.append(
                    {
                        "lesion": f"{code} {region}",
                        "scope": scope,
                        "reader_a": readers[ra],
                        "reading_a": ka,
                        "reader_b": readers[rb],
                        "reading_b": kb,
                        **{k: clean(v) for k, v in numbers.__dict__.items()},
                    }
                )
    if any(p["area_a_mm2"] is None for p in report.pairs):
        report.notes.append("A slide has no µm per pixel: its areas are in pixels, not mm².")


def region_features(region, mpp: float | None) -> dict[str, float]:
    """Area (mm², or px² without MPP), perimeter (mm, or px), number of separate pieces and
    compactness 4·pi·area/perimeter² (1 for a disc) of one region (shapely, level-0 pixels)."""
    import shapely

    region = region if region is not None else shapely.Polygon()
    scale = mpp / 1000.0 if mpp else 1.0  # mm per pixel
    area, perimeter = float(region.area) * scale**2, float(region.length) * scale
    pieces = 0 if region.is_empty else len(getattr(region, "geoms", [region]))
    compactness = 4 * math.pi * area / perimeter**2 if perimeter > 0 else float("nan")
    return {"area": area, "perimeter": perimeter, "pieces": float(pieces), "compactness": compactness}


class _SlidePixels:
    """The slide file of a subject, opened once, for stain and radiomics features of regions."""

    def __init__(self, store: Store, slide: Slide | None) -> None:
        from palmares_desktop.core.slides.measure import slide_stains
        from palmares_desktop.core.slides.reader import open_slide
        from palmares_desktop.core.slides.registry import slide_path

        self.path = slide_path(store, slide) if slide else None
        self.info = open_slide(self.path) if self.path else None
        self.stains = slide_stains(self.path, self.info) if self.path else None

    def features(self, region) -> tuple[dict[str, float], list[str]]:
        from palmares_desktop.core.slides.measure import measure_geometry

        if region is None or region.is_empty:
            return {}, []
        measured = measure_geometry(self.path, self.info, region, self.stains)
        stain = measured.values.get("stain", {})
        values = {name: stain[name] for name in STAIN_FEATURES if name in stain}
        return {**values, **measured.values.get("radiomics", {})}, measured.refused


def _feature_iccs(store, report, readings, slides, readers, repeats, threshold) -> None:
    """ICC of '<class> <feature>' over subjects: shape always, stain and radiomics with the slide."""
    from palmares_desktop.core.study.report import iccs

    subjects = sorted(slides)
    if len(subjects) < 2:
        report.notes.append("ICC of H&E region features needs at least two subjects in the round.")
        return
    classes = sorted({c for regions in readings.values() for c in regions})
    pixels: dict[str, _SlidePixels | None] = {}
    for subject_id in subjects:
        try:
            pixels[subject_id] = _SlidePixels(store, slides[subject_id])
        except PalmaresError as exc:
            pixels[subject_id] = None
            report.notes.append(f"Stain and radiomics features left out of the ICC: {exc}")
    measured: dict[Reading, dict[str, float]] = {}  # each reading's features, computed once
    refusals: set[str] = set()
    for (subject_id, reader, repeat), regions in readings.items():
        if subject_id not in slides:
            continue
        mpp = slides[subject_id].mpp_x if slides[subject_id] else None
        values = {}
        for c in classes:
            values.update({f"{c} {k}": v for k, v in region_features(regions.get(c), mpp).items()})
            if pixels[subject_id] is not None and pixels[subject_id].path is not None:
                found, refused = pixels[subject_id].features(regions.get(c))
                values.update({f"{c} {k}": v for k, v in found.items()})
                refusals.update(refused)
        measured[(subject_id, reader, repeat)] = values
    report.notes += sorted(f"A region feature was refused: {r}" for r in refusals)
    names = sorted({n for values in measured.values() for n in values})

    def table(raters: list[tuple[str, int]]) -> np.ndarray:
        values = np.full((len(names), len(subjects), len(raters)), np.nan)
        for j, subject_id in enumerate(subjects):
            for k, (reader, repeat) in enumerate(raters):
                found = measured.get((subject_id, reader, repeat))
                if found:  # a reading with nothing annotated (yet) is missing, not a zero area
                    values[:, j, k] = [float(found.get(n, np.nan)) for n in names]
        return values

    reader_ids, _ = _reading_pairs(readers, repeats)
    iccs(report, table, names, reader_ids, repeats, threshold)

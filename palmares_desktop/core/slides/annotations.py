"""Slide annotations and detections in level-0 pixel coordinates; areas; QuPath GeoJSON in and out.

Annotations (few, editable regions) and detections (many, compact cells) are separate kinds, as
in QuPath. Geometry is shapely, in level-0 pixels (origin top-left, y down); areas and
perimeters in µm need the slide's MPP and are refused in words without it. QuPath GeoJSON is
read in both dialects: `objectType` + `classification {name, color}` and the older `object_type`
+ packed signed `colorRGB`; a bare Polygon/MultiPolygon geometry (as in QuPath's own test data)
is one unclassified annotation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import shapely
import yaml
from shapely.geometry import mapping, shape

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.model import Slide
from palmares_desktop.core.paths import RESOURCES_DIR
from palmares_desktop.core.slides.detections import Detections

CLASSES_FILE = RESOURCES_DIR / "slides" / "classes.yaml"
KINDS = ("annotation", "detection")


class AnnotationError(PalmaresError):
    """An annotation that cannot be used (message is a plain sentence)."""


@dataclass
class SlideObject:
    geometry: shapely.Geometry  # level-0 pixels
    kind: str = "annotation"  # annotation | detection
    classification: str | None = None
    color: tuple[int, int, int] | None = None
    name: str | None = None
    properties: dict = field(default_factory=dict)  # everything else QuPath wrote, kept for export
    id: str | None = None  # the store's id, once saved
    measurements: dict = field(default_factory=dict)


def study_classes() -> list[dict]:
    """The study's class list: name, colour (RGB), SNOMED CT code ('' where none exists)."""
    return yaml.safe_load(CLASSES_FILE.read_text(encoding="utf-8"))["classes"]


def area_perimeter(geometry, mpp: tuple[float | None, float | None]) -> dict:
    """Area in µm² and mm², perimeter in µm, from level-0 pixels and (mpp_x, mpp_y)."""
    mpp_x, mpp_y = mpp
    if not mpp_x or not mpp_y:
        raise AnnotationError(
            "The slide has no known pixel size (MPP): areas and lengths cannot be measured."
        )
    scaled = shapely.affinity.scale(geometry, mpp_x, mpp_y, origin=(0, 0))
    return {"area_um2": scaled.area, "area_mm2": scaled.area / 1e6, "perimeter_um": scaled.length}


def _unpack_rgb(packed: int) -> tuple[int, int, int]:
    value = packed & 0xFFFFFF  # QuPath packs ARGB into a signed 32-bit int
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _pack_rgb(color) -> int:
    r, g, b = color
    packed = (255 << 24) | (r << 16) | (g << 8) | b
    return packed - (1 << 32)  # signed, as QuPath writes it


def import_geojson(data: dict, width: int, height: int) -> tuple[list[SlideObject], list[str]]:
    """(objects, refusals): every usable object, and one sentence per object refused."""
    features = data.get("features") if data.get("type") == "FeatureCollection" else None
    if features is None:
        features = (
            [{"type": "Feature", "geometry": data, "properties": {}}] if "coordinates" in data else [data]
        )
    bounds = shapely.box(0, 0, width, height)
    objects, refused = [], []
    for n, feature in enumerate(features, start=1):
        props = dict(feature.get("properties") or {})
        label = props.get("name") or f"object {n}"
        try:
            geometry = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
            refused.append(f"{label}: its geometry cannot be read ({exc}).")
            continue
        if geometry.geom_type not in ("Polygon", "MultiPolygon", "Point", "MultiPoint"):
            refused.append(f"{label}: {geometry.geom_type} geometries are not supported.")
            continue
        if not geometry.is_valid:
            refused.append(f"{label}: its outline is broken ({shapely.is_valid_reason(geometry)}).")
            continue
        if not bounds.covers(geometry):
            refused.append(f"{label}: it lies outside the slide ({width} x {height} px).")
            continue
        kind = props.pop("objectType", None) or props.pop("object_type", None) or "annotation"
        classification = props.pop("classification", None)
        name, color = props.pop("name", None), None
        if isinstance(classification, dict):
            color = tuple(classification["color"]) if classification.get("color") else None
            classification = classification.get("name")
        if "colorRGB" in props:
            color = _unpack_rgb(int(props.pop("colorRGB")))
        if kind not in KINDS:
            kind = "detection" if kind in ("cell", "tile") else "annotation"
        objects.append(SlideObject(geometry, kind, classification, color, name, props))
    return objects, refused


def export_geojson(objects: list[SlideObject]) -> dict:
    """A QuPath-style FeatureCollection (current dialect: objectType + classification)."""
    features = []
    for obj in objects:
        props = {**obj.properties, "objectType": obj.kind}
        if obj.name is not None:
            props["name"] = obj.name
        if obj.classification is not None:
            props["classification"] = {"name": obj.classification, "color": list(obj.color or (0, 0, 0))}
        feature = {"type": "Feature", "geometry": mapping(obj.geometry), "properties": props}
        if obj.id is not None:
            feature["id"] = obj.id  # QuPath (0.4+) keeps a feature's id as the object's UUID
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


def _packable(obj: SlideObject) -> bool:
    g = obj.geometry
    return obj.kind == "detection" and (
        g.geom_type == "Point"
        or (g.geom_type == "Polygon" and not g.interiors and len(g.exterior.coords) >= 4)
    )


def _qupath_measurements(value) -> dict[str, float]:
    """QuPath writes measurements as {name: value}, older versions as [{name, value}, ...]."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((m.get("name"), m.get("value")) for m in value if isinstance(m, dict))
    else:
        return {}
    out = {}
    for name, number in items:
        try:
            out[str(name)] = float(number)
        except (TypeError, ValueError):
            continue
    return out


def detections_of(objects: list[SlideObject]) -> tuple[Detections, list]:
    """Packed Detections of detection objects, and the class colours (one per class name)."""
    class_names: list[str] = []
    colors: list = []
    classes, values = [], []
    for obj in objects:
        if obj.classification is not None and obj.classification not in class_names:
            class_names.append(obj.classification)
            colors.append(list(obj.color) if obj.color else None)
        classes.append(class_names.index(obj.classification) if obj.classification is not None else -1)
        values.append(_qupath_measurements(obj.properties.get("measurements")))
    names = sorted({k for v in values for k in v})
    matrix = np.array([[v.get(k, np.nan) for k in names] for v in values], float).reshape(
        len(objects), len(names)
    )
    found = Detections.from_geometries(
        [o.geometry for o in objects], matrix, names, np.array(classes, np.int16), class_names
    )
    return found, colors


def save_objects(store, slide: Slide, objects: list[SlideObject], method: str = "qupath-geojson") -> int:
    """Store objects for a slide (level-0 pixels); returns how many. Annotations (and detections that
    cannot be packed: holes, multi-part) become annotation rows with their QuPath properties kept;
    detections become one packed detection run (classes and numeric measurements kept)."""
    from palmares_desktop.core.slides.detections import pack_tiles
    from palmares_desktop.core.store.slide_objects import save_annotations, save_detection_run

    packed = [o for o in objects if _packable(o)]
    rows = [o for o in objects if not _packable(o)]
    with store.transaction():
        ids = save_annotations(
            store,
            slide,
            [
                {
                    "kind": obj.kind,
                    "classification": obj.classification,
                    "color": obj.color,
                    "geometry": obj.geometry,
                    "name": obj.name,
                    "measurements": {
                        **obj.measurements,
                        **({"properties": obj.properties} if obj.properties else {}),
                    },
                }
                for obj in rows
            ],
        )
        if packed:
            found, colors = detections_of(packed)
            save_detection_run(
                store,
                slide,
                {
                    "method": method,
                    "measurement_names": found.measurement_names,
                    "parameters": {"class_names": found.class_names, "class_colors": colors},
                    "provenance": {"imported_objects": len(packed)},
                },
                pack_tiles(found),
            )
    for obj, new_id in zip(rows, ids, strict=True):
        obj.id = new_id
    return len(rows) + len(packed)


def load_objects(store, slide: Slide, bbox=None) -> list[SlideObject]:
    """The slide's annotation rows (level-0 pixels), all or those whose box meets `bbox` (x0, y0, x1, y1)."""
    from palmares_desktop.core.store.slide_objects import annotations_of

    out = []
    for o in annotations_of(store, slide.id, bbox=bbox):
        extra = {k: v for k, v in o["measurements"].items() if k not in ("mpp", "properties")}
        props = dict(o["measurements"].get("properties") or {})
        out.append(
            SlideObject(
                o["geometry"], o["kind"], o["classification"], o["color"], o["name"], props, o["id"], extra
            )
        )
    return out


def detection_features(found: Detections, class_colors: list | None = None) -> list[dict]:
    """QuPath GeoJSON Features (objectType detection) of packed detections, measurements included."""
    colors = class_colors or [None] * len(found.class_names)
    geometries = found.geometries()
    texts = shapely.to_geojson(geometries) if len(found) else []
    features = []
    names = found.measurement_names
    for i, text in enumerate(texts):
        props: dict = {"objectType": "detection"}
        c = int(found.classes[i])
        if c >= 0:
            props["classification"] = {"name": found.class_names[c], "color": list(colors[c] or (0, 0, 0))}
        row = found.measurements[i]
        measured = {n: float(v) for n, v in zip(names, row.tolist(), strict=True) if v == v}  # NaN: absent
        if measured:
            props["measurements"] = measured
        features.append({"type": "Feature", "geometry": json.loads(text), "properties": props})
    return features


def export_slide(store, slide: Slide, detections: bool = True) -> dict:
    """The slide's annotations and (optionally) detections as one QuPath-compatible FeatureCollection."""
    from palmares_desktop.core.slides.detections import unpack
    from palmares_desktop.core.store.slide_objects import detection_runs_of, detection_tiles

    collection = export_geojson(load_objects(store, slide))
    if detections:
        runs = {r["id"]: r for r in detection_runs_of(store, slide.id)}
        for run_id, run in runs.items():
            tiles = detection_tiles(store, slide.id, run_ids=[run_id])
            classes = run["parameters"].get("class_names", [])
            if not classes and run.get("classification"):
                classes = [run["classification"]]
            parts = [unpack(t["data"], run["measurement_names"], classes) for t in tiles]
            found = Detections.concatenate(parts)
            if not run["parameters"].get("class_names") and run.get("classification"):
                found.classes = np.zeros(len(found), np.int16)
                found.class_names = [run["classification"]]
            collection["features"] += detection_features(found, run["parameters"].get("class_colors"))
    return collection

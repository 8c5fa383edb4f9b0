"""Slide annotations and detections in level-0 pixel coordinates; areas; QuPath GeoJSON in and out.

Annotations (few, editable regions) and detections (many, compact cells) are separate kinds, as
in QuPath. Geometry is shapely, in level-0 pixels (origin top-left, y down); areas and
perimeters in µm need the slide's MPP and are refused in words without it. QuPath GeoJSON is
read in both dialects: `objectType` + `classification {name, color}` and the older `object_type`
+ packed signed `colorRGB`; a bare Polygon/MultiPolygon geometry (as in QuPath's own test data)
is one unclassified annotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import shapely
import yaml
from shapely.geometry import mapping, shape

from palmares_desktop.core.errors import PalmaresError
from palmares_desktop.core.paths import RESOURCES_DIR

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
        features.append({"type": "Feature", "geometry": mapping(obj.geometry), "properties": props})
    return {"type": "FeatureCollection", "features": features}


def save_objects(store, slide: dict, objects: list[SlideObject]) -> int:
    """Store objects for a slide (level-0 pixels) in one transaction; returns how many."""
    from palmares_desktop.core.store.slide_objects import save_annotations

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
                "measurements": obj.measurements,
            }
            for obj in objects
        ],
    )
    for obj, new_id in zip(objects, ids, strict=True):
        obj.id = new_id
    return len(ids)


def load_objects(store, slide: dict, bbox=None) -> list[SlideObject]:
    """The slide's objects (level-0 pixels), all or those whose box meets `bbox` (x0, y0, x1, y1)."""
    from palmares_desktop.core.store.slide_objects import annotations_of

    return [
        SlideObject(
            o["geometry"],
            o["kind"],
            o["classification"],
            o["color"],
            o["name"],
            id=o["id"],
            measurements={k: v for k, v in o["measurements"].items() if k != "mpp"},
        )
        for o in annotations_of(store, slide["id"], bbox=bbox)
    ]
